//! Pythia brainkey: the server side of Virgil's verifiable oblivious PRF on BLS12-381, as e3kit
//! derives the key that encrypts its private-key backup.
//!
//! The client blinds its password into a point `x` of G1 and sends it; the server answers the
//! seed `e(k·x, Q)`, where `k` (a scalar) and `Q` (a point of G2) are secret to the server and
//! fixed per user. The client removes its blinding and derives an Ed25519 key pair from the
//! result. The server never sees the password, and every guess at it needs the server, which is
//! why the endpoint is throttled.
//!
//! ## Wire formats (relic's, as `@virgilsecurity/pythia-crypto` 1.1.3 encodes them)
//!
//! - **Blinded password**: 49 bytes, a prefix `0x02 + b` then x as 48 bytes big-endian and
//!   canonical (< p). `b` is bit 0 of y in *Montgomery form*, that is of `y·2^384 mod p`: not of
//!   y itself and not the ZCash "larger y" rule. [`BlindedPassword`] refuses every other length
//!   and prefix, a non-canonical x, an x with no point, and points outside the prime-order
//!   subgroup (G1's cofactor has small factors, so a point of small order would leak `k` modulo
//!   them).
//! - **Seed**: 384 bytes, relic's packed form of f = e(k·x, Q) in `Fp12 = Fp6[w]/(w²−v)`,
//!   `Fp6 = Fp2[v]/(v³−(u+1))`, `Fp2 = Fp[u]/(u²+1)`: `f.c0.c1 ‖ f.c0.c2 ‖ f.c1.c0 ‖ f.c1.c2`, each Fp2 as
//!   `c0 ‖ c1`, each Fp 48 bytes big-endian. The client recomputes `f.c0.c0` and `f.c1.c1`.
//!
//! ## Per-user keys ([`Secret::key_for`], derivation v1)
//!
//! With `scope = lp(app) ‖ lp(identity) ‖ lp(brainkey_id)` (`lp` = 4-byte big-endian length,
//! then the bytes):
//! - `k = HMAC-SHA512(secret, "cardinal-pythia-v1/k" ‖ counter ‖ scope) mod r`, the counter
//!   (one byte, from 0) moving on only in the 2^-254 case of a zero k;
//! - `Q = hash_to_curve(scope)` on G2, RFC 9380's `BLS12381G2_XMD:SHA-256_SSWU_RO_` suite with
//!   the domain-separation tag [`Q_DST_V1`].
//!
//! The identity is in both, so two users with one password get unrelated keys. The secret's text
//! names its derivation (`cardinal-pythia-v1:<base64>`): a later derivation comes with secrets of
//! its own name, and deployments whose secret says v1 keep deriving every existing backup's key.
//!
//! ## Side channels
//!
//! arkworks' scalar multiplication is variable-time, so `k` never meets the client's point
//! directly: each evaluation draws a random `s` and computes `(k·s⁻¹)·(s·x)`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use ark_bls12_381::{Bls12_381, Fq, Fq12, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::hashing::HashToCurve;
use ark_ec::hashing::curve_maps::wb::WBMap;
use ark_ec::hashing::map_to_curve_hasher::MapToCurveBasedHasher;
use ark_ec::pairing::Pairing;
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::field_hashers::DefaultFieldHasher;
use ark_ff::{BigInt, BigInteger, Field, PrimeField, UniformRand, Zero};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha2::{Sha256, Sha512};
use zeroize::{Zeroize, Zeroizing};

/// Bytes of a blinded password.
pub const BLINDED_PASSWORD_BYTES: usize = 49;
/// Bytes of a seed.
pub const SEED_BYTES: usize = 384;
/// Bytes of a Pythia secret.
pub const SECRET_BYTES: usize = 32;
/// The domain-separation tag of Q under derivation v1 (RFC 9380 §3.1: names the protocol, the
/// version and the suite).
pub const Q_DST_V1: &[u8] = b"CARDINAL-PYTHIA-V1-BRAINKEY_BLS12381G2_XMD:SHA-256_SSWU_RO_";
const K_LABEL_V1: &[u8] = b"cardinal-pythia-v1/k";
const SECRET_PREFIX_V1: &str = "cardinal-pythia-v1:";

/// Why a blinded password is refused. Each is a client error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlindedPasswordError {
    /// Not standard base64.
    #[error("blinded_password is not base64")]
    NotBase64,
    /// Not 49 bytes.
    #[error("blinded_password must be 49 bytes (a compressed G1 point), not {0}")]
    Length(usize),
    /// A prefix other than 0x02 or 0x03.
    #[error("blinded_password must start with 0x02 or 0x03, not {0:#04x}")]
    Prefix(u8),
    /// x is p or more.
    #[error("blinded_password's x is not a canonical field element (x >= p)")]
    NonCanonical,
    /// x³ + 4 is not a square: no point has this x.
    #[error("blinded_password is not a point of the curve")]
    NotOnCurve,
    /// The point is the identity or outside the prime-order subgroup.
    #[error("blinded_password is not in the prime-order subgroup G1")]
    NotInSubgroup,
}

/// A blinded password that decoded to a point of G1 other than the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlindedPassword(G1Affine);

/// 48 big-endian bytes as a field element, if canonical.
fn fq_from_be(bytes: &[u8]) -> Option<Fq> {
    let mut limbs = [0u64; 6];
    for (i, limb) in limbs.iter_mut().enumerate() {
        let end = bytes.len() - 8 * i;
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[end - 8..end]);
        *limb = u64::from_be_bytes(word);
    }
    Fq::from_bigint(BigInt::new(limbs))
}

fn fq_to_be(value: &Fq, out: &mut Vec<u8>) {
    out.extend_from_slice(&value.into_bigint().to_bytes_be());
}

/// Bit 0 of `y` as relic stores it: in Montgomery form, `y·2^384 mod p`.
fn montgomery_parity(y: &Fq) -> u8 {
    let r = Fq::from(2u64).pow([384u64]);
    u8::from((*y * r).into_bigint().is_odd())
}

impl BlindedPassword {
    /// Decodes the base64 text of a request.
    pub fn from_base64(text: &str) -> Result<Self, BlindedPasswordError> {
        // 49 bytes are 68 characters; anything much longer is refused before decoding.
        if text.len() > 4 * BLINDED_PASSWORD_BYTES {
            return Err(BlindedPasswordError::Length(text.len() / 4 * 3));
        }
        let bytes = STANDARD.decode(text.as_bytes()).map_err(|_| BlindedPasswordError::NotBase64)?;
        Self::from_bytes(&bytes)
    }

    /// Decodes and validates the 49 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlindedPasswordError> {
        if bytes.len() != BLINDED_PASSWORD_BYTES {
            return Err(BlindedPasswordError::Length(bytes.len()));
        }
        let want = match bytes[0] {
            0x02 => 0,
            0x03 => 1,
            other => return Err(BlindedPasswordError::Prefix(other)),
        };
        let x = fq_from_be(&bytes[1..]).ok_or(BlindedPasswordError::NonCanonical)?;
        let (y, neg_y) = G1Affine::get_ys_from_x_unchecked(x).ok_or(BlindedPasswordError::NotOnCurve)?;
        let y = if montgomery_parity(&y) == want { y } else { neg_y };
        let point = G1Affine::new_unchecked(x, y);
        if point.is_zero() || !point.is_on_curve() || !point.is_in_correct_subgroup_assuming_on_curve() {
            return Err(BlindedPasswordError::NotInSubgroup);
        }
        Ok(BlindedPassword(point))
    }

    /// The 49 bytes, as the client encoded them.
    pub fn to_bytes(&self) -> [u8; BLINDED_PASSWORD_BYTES] {
        let mut out = Vec::with_capacity(BLINDED_PASSWORD_BYTES);
        out.push(0x02 + montgomery_parity(&self.0.y));
        fq_to_be(&self.0.x, &mut out);
        let mut bytes = [0u8; BLINDED_PASSWORD_BYTES];
        bytes.copy_from_slice(&out);
        bytes
    }
}

/// The answer: relic's packed encoding of e(k·x, Q).
#[derive(Clone, PartialEq, Eq)]
pub struct Seed([u8; SEED_BYTES]);

impl Seed {
    fn encode(f: &Fq12) -> Seed {
        let mut out = Vec::with_capacity(SEED_BYTES);
        for part in [&f.c0.c1, &f.c0.c2, &f.c1.c0, &f.c1.c2] {
            fq_to_be(&part.c0, &mut out);
            fq_to_be(&part.c1, &mut out);
        }
        let mut bytes = [0u8; SEED_BYTES];
        bytes.copy_from_slice(&out);
        Seed(bytes)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; SEED_BYTES] {
        &self.0
    }

    /// Standard base64, as the response carries it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(..)")
    }
}

/// Whose key: the app, the identity and the optional brainkey id (absent and empty are one).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The app's id.
    pub app: &'a str,
    /// The user's identity within the app.
    pub identity: &'a str,
    /// The client's brainkey id; e3kit sends none.
    pub brainkey_id: &'a str,
}

impl Scope<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [self.app, self.identity, self.brainkey_id] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out
    }
}

/// Which rule turns the secret into per-user keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derivation {
    /// HMAC-SHA512 for k, RFC 9380 hash-to-G2 with [`Q_DST_V1`] for Q.
    V1,
}

/// Why a secret's text is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not `cardinal-pythia-v1:` then the base64 of 32 bytes.
    #[error("a Pythia secret is 'cardinal-pythia-v1:' followed by the base64 of 32 random bytes")]
    Malformed,
}

/// The deployment's Pythia secret. Every backup's key derives from it: losing or changing it
/// makes every backup unrecoverable. `Debug` never shows it; its memory is wiped on drop.
pub struct Secret {
    bytes: Zeroizing<[u8; SECRET_BYTES]>,
    derivation: Derivation,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({:?}, ..)", self.derivation)
    }
}

impl Secret {
    /// A new random secret for the current derivation.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Secret {
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        rng.fill_bytes(bytes.as_mut());
        Secret { bytes, derivation: Derivation::V1 }
    }

    /// Parses `cardinal-pythia-v1:<base64 of 32 bytes>` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text.trim().strip_prefix(SECRET_PREFIX_V1).ok_or(SecretError::Malformed)?;
        let decoded = Zeroizing::new(STANDARD.decode(encoded).map_err(|_| SecretError::Malformed)?);
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        if decoded.len() != SECRET_BYTES {
            return Err(SecretError::Malformed);
        }
        bytes.copy_from_slice(&decoded);
        Ok(Secret { bytes, derivation: Derivation::V1 })
    }

    /// The text form, for the file it is kept in.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{SECRET_PREFIX_V1}{}", STANDARD.encode(self.bytes.as_ref())))
    }

    /// The derivation this secret is for.
    pub fn derivation(&self) -> Derivation {
        self.derivation
    }

    /// The user's key: `k` and `Q` for `scope`.
    pub fn key_for(&self, scope: &Scope<'_>) -> UserKey {
        let encoded = scope.encode();
        UserKey { k: self.scalar(&encoded), q: hash_to_g2(&encoded) }
    }

    fn scalar(&self, scope: &[u8]) -> Fr {
        for counter in 0u8..=u8::MAX {
            let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(self.bytes.as_ref()) else { break };
            mac.update(K_LABEL_V1);
            mac.update(&[counter]);
            mac.update(scope);
            let mut wide = Zeroizing::new([0u8; 64]);
            wide.copy_from_slice(&mac.finalize().into_bytes());
            let k = Fr::from_be_bytes_mod_order(wide.as_ref());
            if !k.is_zero() {
                return k;
            }
        }
        // 256 zero scalars in a row from HMAC-SHA512 cannot happen; one is never used as k.
        Fr::from(1u64)
    }
}

fn hash_to_g2(scope: &[u8]) -> G2Affine {
    type Hasher =
        MapToCurveBasedHasher<G2Projective, DefaultFieldHasher<Sha256, 128>, WBMap<ark_bls12_381::g2::Config>>;
    // Both steps fail only for a curve without a Wahby–Boneh map, which BLS12-381's G2 has.
    match Hasher::new(Q_DST_V1).and_then(|hasher| hasher.hash(scope)) {
        Ok(point) => point,
        Err(_) => G2Affine::generator(),
    }
}

/// One user's `k` and `Q`. `k` is wiped on drop.
pub struct UserKey {
    k: Fr,
    q: G2Affine,
}

impl Drop for UserKey {
    fn drop(&mut self) {
        self.k.zeroize();
    }
}

impl UserKey {
    /// The seed for `x`: e(k·x, Q), with k blinded by a fresh random scalar.
    pub fn evaluate<R: RngCore + CryptoRng>(&self, x: &BlindedPassword, rng: &mut R) -> Seed {
        let mut s = Fr::rand(rng);
        while s.is_zero() {
            s = Fr::rand(rng);
        }
        let blinded = G1Projective::from(x.0) * s;
        let mut unblind = self.k * s.inverse().unwrap_or(Fr::from(1u64));
        let kx = (blinded * unblind).into_affine();
        s.zeroize();
        unblind.zeroize();
        Seed::encode(&Bls12_381::pairing(kx, self.q).0)
    }

    #[cfg(test)]
    fn from_parts(k: Fr, q: G2Affine) -> UserKey {
        UserKey { k, q }
    }
}

/// A G2 point in relic's compressed test encoding (97 bytes): only the vectors use it.
#[cfg(test)]
fn g2_from_bytes(bytes: &[u8]) -> Option<G2Affine> {
    if bytes.len() != 97 {
        return None;
    }
    let want = bytes[0].checked_sub(0x02)?;
    let x = ark_bls12_381::Fq2::new(fq_from_be(&bytes[1..49])?, fq_from_be(&bytes[49..97])?);
    let (y, neg_y) = G2Affine::get_ys_from_x_unchecked(x)?;
    let y = if montgomery_parity(&y.c0) == want { y } else { neg_y };
    let point = G2Affine::new_unchecked(x, y);
    (point.is_on_curve() && point.is_in_correct_subgroup_assuming_on_curve()).then_some(point)
}

#[cfg(test)]
mod tests;
