//! Ed25519 keys in their DER encodings, and Virgil's 83-byte signature form.

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signer, VerifyingKey};
use sha2::{Digest, Sha512};

use crate::b64;
use crate::error::CardError;

/// DER prefix of a Virgil signature: `SEQUENCE { AlgorithmIdentifier { sha512, NULL }, OCTET STRING(64) }`.
pub const SIGNATURE_PREFIX: [u8; 19] =
    [0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40];

/// DER of a PKCS#8 v1 Ed25519 private key, before the 32-byte seed.
const PKCS8_V1_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];

/// DER of an Ed25519 SubjectPublicKeyInfo, before the 32-byte key.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

fn pem_armor(label: &str, der: &[u8]) -> String {
    let body = b64::encode_std(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// Length of a Virgil signature: the prefix and a 64-byte Ed25519 signature.
pub const SIGNATURE_LEN: usize = 83;

/// An Ed25519 public key, kept with the SPKI DER it was read from or written to.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    spki: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_spki_base64())
    }
}

impl PublicKey {
    /// Reads an SPKI DER (RFC 8410). Any other algorithm is [`CardError::UnsupportedKeyType`].
    pub fn from_spki_der(der: &[u8]) -> Result<Self, CardError> {
        let key = VerifyingKey::from_public_key_der(der).map_err(|_| CardError::UnsupportedKeyType)?;
        Ok(PublicKey { key, spki: der.to_vec() })
    }

    /// Reads an SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_spki_pem(pem: &str) -> Result<Self, CardError> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| CardError::InvalidKey(e.to_string()))?;
        Ok(Self::from_verifying_key(key))
    }

    /// Reads a key written as a PEM, as base64 of its SPKI DER, or as base64 of the raw 32 bytes:
    /// the forms operators paste from Virgil dashboards, OpenSSL or this project's own output.
    pub fn from_text(text: &str) -> Result<Self, CardError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return Self::from_spki_pem(text);
        }
        let bytes = b64::decode_std(text).ok_or_else(|| CardError::InvalidKey("neither PEM nor base64".into()))?;
        Self::from_bytes(&bytes)
    }

    /// Reads SPKI DER, or a raw 32-byte key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CardError> {
        match <&[u8; 32]>::try_from(bytes) {
            Ok(raw) => VerifyingKey::from_bytes(raw)
                .map(Self::from_verifying_key)
                .map_err(|e| CardError::InvalidKey(e.to_string())),
            Err(_) => Self::from_spki_der(bytes),
        }
    }

    /// Refuses keys that no honest signer has: small-order points (anyone can forge a
    /// signature that a non-strict verifier accepts for them) and non-canonical encodings (the
    /// same point under two spellings). Every key that signs tokens or cards passes this.
    pub fn check_strong(&self) -> Result<(), CardError> {
        let canonical = self.key.to_edwards().compress().to_bytes() == *self.key.as_bytes();
        if self.key.is_weak() || !canonical { Err(CardError::WeakKey) } else { Ok(()) }
    }

    /// Wraps a dalek key.
    pub fn from_verifying_key(key: VerifyingKey) -> Self {
        let spki = [&SPKI_PREFIX[..], key.as_bytes()].concat();
        PublicKey { key, spki }
    }

    /// The SPKI DER bytes.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// Base64 of the SPKI DER, the form cards carry.
    pub fn to_spki_base64(&self) -> String {
        b64::encode_std(&self.spki)
    }

    /// The SPKI PEM.
    pub fn to_spki_pem(&self) -> String {
        pem_armor("PUBLIC KEY", &self.spki)
    }

    /// The raw 32-byte key.
    pub fn raw_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// The dalek key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Verifies a Virgil 83-byte signature over `message`.
    ///
    /// Strict verification: small-order keys and non-canonical signatures are refused, which an
    /// honest signer never produces.
    pub fn verify_virgil(&self, message: &[u8], signature: &[u8]) -> bool {
        let Some(raw) = signature.strip_prefix(&SIGNATURE_PREFIX[..]) else {
            return false;
        };
        let Ok(raw) = <[u8; 64]>::try_from(raw) else {
            return false;
        };
        let digest = Sha512::digest(message);
        self.key.verify_strict(&digest, &ed25519_dalek::Signature::from_bytes(&raw)).is_ok()
    }
}

/// An Ed25519 private key. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public: {})", self.public_key().to_spki_base64())
    }
}

impl SigningKey {
    /// A fresh key from the operating system's RNG.
    pub fn generate() -> Self {
        SigningKey(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// A key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Reads PKCS#8 v1 DER (48 bytes for Ed25519, as Virgil exports it) or v2.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CardError> {
        ed25519_dalek::SigningKey::from_pkcs8_der(der).map(SigningKey).map_err(|e| CardError::InvalidKey(e.to_string()))
    }

    /// Reads a PKCS#8 PEM, or base64 of PKCS#8 DER.
    pub fn from_text(text: &str) -> Result<Self, CardError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return ed25519_dalek::SigningKey::from_pkcs8_pem(text)
                .map(SigningKey)
                .map_err(|e| CardError::InvalidKey(e.to_string()));
        }
        let der = b64::decode_std(text).ok_or_else(|| CardError::InvalidKey("neither PEM nor base64".into()))?;
        Self::from_pkcs8_der(&der)
    }

    /// The PKCS#8 v1 PEM (the caller should write it with mode 0600).
    pub fn to_pkcs8_pem(&self) -> String {
        pem_armor("PRIVATE KEY", &self.to_pkcs8_der())
    }

    /// The 48-byte PKCS#8 v1 DER (RFC 8410), the form Virgil's SDKs export and import. dalek
    /// writes v2 (with the public key appended), which older Virgil clients refuse.
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        [&PKCS8_V1_PREFIX[..], self.0.as_bytes()].concat()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_verifying_key(self.0.verifying_key())
    }

    /// Virgil's 83-byte signature over `message`: Ed25519 over SHA-512(message), DER-wrapped.
    pub fn sign_virgil(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        let digest = Sha512::digest(message);
        let raw = self.0.sign(&digest).to_bytes();
        let mut out = [0u8; SIGNATURE_LEN];
        out[..SIGNATURE_PREFIX.len()].copy_from_slice(&SIGNATURE_PREFIX);
        out[SIGNATURE_PREFIX.len()..].copy_from_slice(&raw);
        out
    }

    /// The dalek key, for libraries that take it directly.
    pub fn dalek(&self) -> &ed25519_dalek::SigningKey {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_round_trip_and_reject_tampering() {
        let key = SigningKey::generate();
        let sig = key.sign_virgil(b"message");
        assert!(key.public_key().verify_virgil(b"message", &sig));
        assert!(!key.public_key().verify_virgil(b"messagf", &sig));
        assert!(!key.public_key().verify_virgil(b"message", &sig[19..]), "a bare 64-byte signature is refused");
        let mut bad_prefix = sig;
        bad_prefix[3] ^= 1;
        assert!(!key.public_key().verify_virgil(b"message", &bad_prefix));
        assert!(!SigningKey::generate().public_key().verify_virgil(b"message", &sig));
    }

    #[test]
    fn keys_round_trip_through_pem_and_text() {
        let key = SigningKey::generate();
        let pem = key.to_pkcs8_pem();
        let again = SigningKey::from_text(&pem).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public = PublicKey::from_text(&key.public_key().to_spki_pem()).unwrap();
        assert_eq!(public, key.public_key());
        let public = PublicKey::from_text(&key.public_key().to_spki_base64()).unwrap();
        assert_eq!(public, key.public_key());
    }

    #[test]
    fn small_order_and_non_canonical_keys_are_weak() {
        assert_eq!(SigningKey::generate().public_key().check_strong(), Ok(()));
        // The identity point (y = 1) and the point of order 2 (y = -1): both small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let minus_one: [u8; 32] = {
            let mut p = [0xffu8; 32];
            p[0] = 0xec;
            p[31] = 0x7f;
            p
        };
        for raw in [identity, minus_one] {
            assert_eq!(PublicKey::from_bytes(&raw).unwrap().check_strong(), Err(CardError::WeakKey));
        }
        // y + p for small y: the same point as y, spelled with a field element >= p. Some of
        // these are points of large order, which only the canonical check refuses.
        let mut large_order_non_canonical = 0;
        for y in 2u8..19 {
            let mut spelled = [0xffu8; 32];
            spelled[0] = 0xed + y;
            spelled[31] = 0x7f;
            let Ok(key) = PublicKey::from_bytes(&spelled) else { continue };
            assert_eq!(key.check_strong(), Err(CardError::WeakKey), "y = {y} + p");
            large_order_non_canonical += usize::from(!key.verifying_key().is_weak());
        }
        assert!(large_order_non_canonical > 0, "the loop met a non-canonical key of large order");
    }

    #[test]
    fn short_and_foreign_keys_are_errors_not_panics() {
        assert!(PublicKey::from_bytes(&[1u8; 16]).is_err());
        assert!(PublicKey::from_bytes(&[]).is_err());
        assert_eq!(PublicKey::from_spki_der(&[0x30, 0x03, 0x02, 0x01, 0x00]), Err(CardError::UnsupportedKeyType));
        assert!(SigningKey::from_text("not a key").is_err());
    }
}
