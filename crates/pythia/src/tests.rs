//! Every vector of the official package (tests/vectors/pythia.json), and malformed points.

use super::*;
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../tests/vectors/pythia.json")).unwrap()
}

fn b64(value: &Value) -> Vec<u8> {
    STANDARD.decode(value.as_str().unwrap()).unwrap()
}

fn scalar(value: &Value) -> Fr {
    let bytes = hex::decode(value.as_str().unwrap()).unwrap();
    assert_eq!(bytes.len(), 32);
    Fr::from_bigint(Fr::from_be_bytes_mod_order(&bytes).into_bigint()).unwrap()
}

#[test]
fn every_evaluation_vector_gives_the_official_seed_byte_for_byte() {
    let vectors = vectors();
    let cases = vectors["evaluation"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let x = BlindedPassword::from_base64(case["blinded_password"].as_str().unwrap()).expect(name);
        let q = g2_from_bytes(&b64(&case["q"])).expect(name);
        let key = UserKey::from_parts(scalar(&case["k"]), q);
        let seed = key.evaluate(&x, &mut rand::rngs::OsRng);
        assert_eq!(seed.as_bytes().to_vec(), b64(&case["seed"]), "{name}");
        assert_eq!(seed.to_base64(), case["seed"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn blinded_passwords_of_both_parities_re_encode_identically() {
    let vectors = vectors();
    let mut seen = std::collections::HashSet::new();
    let cases =
        vectors["evaluation"].as_array().unwrap().iter().chain(
            vectors["end_to_end"].as_array().unwrap().iter().flat_map(|case| case["blindings"].as_array().unwrap()),
        );
    for case in cases {
        let bytes = b64(&case["blinded_password"]);
        let x = BlindedPassword::from_bytes(&bytes).unwrap();
        assert_eq!(x.to_bytes().to_vec(), bytes);
        if let Some(parity) = case.get("blinded_password_y_parity") {
            seen.insert((parity["montgomery"].as_u64().unwrap(), parity["canonical"].as_u64().unwrap()));
            // The prefix is the Montgomery bit, whatever the canonical one says.
            assert_eq!(u64::from(bytes[0] - 2), parity["montgomery"].as_u64().unwrap());
        }
    }
    assert_eq!(seen.len(), 4, "the vectors cover both prefixes and both agreements");
}

#[test]
fn the_transformation_public_key_is_k_times_the_generator_in_this_encoding() {
    let vectors = vectors();
    let generator = BlindedPassword::from_base64(vectors["constants"]["g1_generator"].as_str().unwrap()).unwrap();
    assert_eq!(generator.0, G1Affine::generator());
    for case in vectors["evaluation"].as_array().unwrap() {
        let public = (G1Affine::generator() * scalar(&case["k"])).into_affine();
        let expected = b64(&case["transformation_public_key"]);
        assert_eq!(BlindedPassword(public).to_bytes().to_vec(), expected);
    }
}

#[test]
fn two_blindings_of_one_password_give_seeds_the_official_client_deblinds_to_one_value() {
    // The vectors' k and Q are the package's; the seeds must match byte for byte, so that the
    // client's deblind (recorded in the vectors) gives one value.
    let vectors = vectors();
    for case in vectors["end_to_end"].as_array().unwrap() {
        let key = UserKey::from_parts(scalar(&case["k"]), g2_from_bytes(&b64(&case["q"])).unwrap());
        for blinding in case["blindings"].as_array().unwrap() {
            let x = BlindedPassword::from_bytes(&b64(&blinding["blinded_password"])).unwrap();
            assert_eq!(key.evaluate(&x, &mut rand::rngs::OsRng).as_bytes().to_vec(), b64(&blinding["seed"]));
            assert_eq!(blinding["deblinded"], case["deblinded"]);
        }
    }
}

#[test]
fn every_invalid_vector_is_refused_for_its_reason() {
    use BlindedPasswordError as E;
    let expected = [
        E::Length(0),
        E::Length(48),
        E::Length(97),
        E::NotInSubgroup,
        E::NonCanonical,
        E::NotOnCurve,
        E::Length(1),
        E::Prefix(0x05),
        E::NotBase64,
    ];
    let vectors = vectors();
    let cases = vectors["invalid_blinded_passwords"].as_array().unwrap();
    assert_eq!(cases.len(), expected.len());
    for (case, want) in cases.iter().zip(expected) {
        let got = BlindedPassword::from_base64(case["blinded_password"].as_str().unwrap());
        assert_eq!(got, Err(want), "{}", case["why"]);
    }
}

fn with_x(prefix: u8, x: &[u8; 48]) -> Vec<u8> {
    let mut bytes = vec![prefix];
    bytes.extend_from_slice(x);
    bytes
}

fn x_of(value: &Fq) -> [u8; 48] {
    value.into_bigint().to_bytes_be().try_into().unwrap()
}

#[test]
fn malformed_points_are_refused_and_never_evaluated() {
    use BlindedPasswordError as E;
    let good = BlindedPassword(G1Affine::generator()).to_bytes();
    // Wrong lengths and prefixes around a good point.
    assert_eq!(BlindedPassword::from_bytes(&good[..48]), Err(E::Length(48)));
    assert_eq!(BlindedPassword::from_bytes(&[good.as_slice(), &[0]].concat()), Err(E::Length(50)));
    for prefix in [0x00, 0x01, 0x04, 0x06, 0x82, 0xff] {
        let mut bad = good;
        bad[0] = prefix;
        assert_eq!(BlindedPassword::from_bytes(&bad), Err(E::Prefix(prefix)));
    }
    // x = 0 with either prefix: (0, ±2) has order 3.
    for prefix in [0x02, 0x03] {
        assert_eq!(BlindedPassword::from_bytes(&with_x(prefix, &[0; 48])), Err(E::NotInSubgroup));
    }
    // x = p, x = p + 1 and x = 2^384 - 1: not canonical, even where x mod p is a good point.
    let p: [u8; 48] = <Fq as PrimeField>::MODULUS.to_bytes_be().try_into().unwrap();
    assert_eq!(BlindedPassword::from_bytes(&with_x(0x02, &p)), Err(E::NonCanonical));
    assert_eq!(BlindedPassword::from_bytes(&with_x(0x02, &[0xff; 48])), Err(E::NonCanonical));
    let generator_x_plus_p = (<Fq as PrimeField>::MODULUS.to_bytes_be().iter().zip(good[1..].iter()))
        .rev()
        .scan(0u16, |carry, (a, b)| {
            let sum = u16::from(*a) + u16::from(*b) + *carry;
            *carry = sum >> 8;
            Some(sum as u8)
        })
        .collect::<Vec<u8>>();
    let generator_x_plus_p: Vec<u8> = generator_x_plus_p.into_iter().rev().collect();
    // The sum fits 48 bytes (p < 2^381, x < p).
    assert_eq!(
        BlindedPassword::from_bytes(&with_x(0x02, &generator_x_plus_p.try_into().unwrap())),
        Err(E::NonCanonical)
    );
    // Off the curve: x = 1 (5 is not a square).
    let one = x_of(&Fq::from(1u64));
    assert_eq!(BlindedPassword::from_bytes(&with_x(0x03, &one)), Err(E::NotOnCurve));
    // On the curve but outside G1: the first x whose point is not in the subgroup.
    let outside = (2u64..)
        .map(Fq::from)
        .find(|x| {
            G1Affine::get_ys_from_x_unchecked(*x)
                .is_some_and(|(y, _)| !G1Affine::new_unchecked(*x, y).is_in_correct_subgroup_assuming_on_curve())
        })
        .unwrap();
    for prefix in [0x02, 0x03] {
        assert_eq!(BlindedPassword::from_bytes(&with_x(prefix, &x_of(&outside))), Err(E::NotInSubgroup));
    }
    // The identity has no 49-byte form; relic's one-byte 0x00 is a length error.
    assert_eq!(BlindedPassword::from_bytes(&[0x00]), Err(E::Length(1)));
    // Oversized text is refused before it is decoded.
    assert_eq!(BlindedPassword::from_base64(&"A".repeat(10_000)), Err(E::Length(7500)));
    assert_eq!(BlindedPassword::from_base64(" Ahh"), Err(E::NotBase64));
}

fn secret(byte: u8) -> Secret {
    Secret::parse(&format!("cardinal-pythia-v1:{}", STANDARD.encode([byte; 32]))).unwrap()
}

fn scope<'a>(app: &'a str, identity: &'a str, brainkey_id: &'a str) -> Scope<'a> {
    Scope { app, identity, brainkey_id }
}

#[test]
fn keys_differ_by_app_identity_brainkey_id_and_secret_and_are_stable() {
    let x = BlindedPassword(G1Affine::generator());
    let seed = |secret: &Secret, scope: Scope<'_>| secret.key_for(&scope).evaluate(&x, &mut rand::rngs::OsRng);
    let a = secret(1);
    let base = seed(&a, scope("app", "alice", ""));
    assert_eq!(seed(&a, scope("app", "alice", "")), base, "deterministic despite the random blinding");
    for other in [
        seed(&a, scope("app", "bob", "")),
        seed(&a, scope("app2", "alice", "")),
        seed(&a, scope("app", "alice", "work")),
        // Length prefixes: moving a byte across a boundary is another scope.
        seed(&a, scope("appa", "lice", "")),
        seed(&a, scope("app", "alic", "e")),
        seed(&secret(2), scope("app", "alice", "")),
    ] {
        assert_ne!(other, base);
    }
}

#[test]
fn derivation_v1_is_pinned() {
    // A change here breaks every existing backup: it needs a new derivation version instead.
    let key = secret(7).key_for(&scope("default", "alice", ""));
    let seed = key.evaluate(&BlindedPassword(G1Affine::generator()), &mut rand::rngs::OsRng);
    let digest = hex::encode(&<Sha256 as sha2::Digest>::digest(seed.as_bytes())[..16]);
    assert_eq!(digest, "1b856752936c4d459e63b57360d15f51");
}

#[test]
fn secrets_round_trip_their_text_and_refuse_anything_else() {
    let generated = Secret::generate(&mut rand::rngs::OsRng);
    let text = generated.to_text();
    assert!(text.starts_with("cardinal-pythia-v1:"));
    let parsed = Secret::parse(&format!("  {}\n", text.as_str())).unwrap();
    assert_eq!(parsed.bytes.as_ref(), generated.bytes.as_ref());
    assert_eq!(parsed.derivation(), Derivation::V1);
    assert!(!format!("{parsed:?}").contains(&text[19..]));
    for bad in [
        "",
        "cardinal-pythia-v1:",
        "cardinal-pythia-v2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "cardinal-pythia-v1:AAAA",
        "cardinal-pythia-v1:%%%",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ] {
        assert_eq!(Secret::parse(bad).err(), Some(SecretError::Malformed), "{bad}");
    }
}

#[test]
fn q_is_in_g2_and_not_the_generator() {
    let key = secret(3).key_for(&scope("a", "b", ""));
    assert!(key.q.is_on_curve() && key.q.is_in_correct_subgroup_assuming_on_curve());
    assert!(!key.q.is_zero());
    assert_ne!(key.q, G2Affine::generator());
}

#[test]
fn q_s_hash_is_rfc_9380_s_bls12381g2_suite() {
    // RFC 9380, appendix J.10.1, msg = "".
    type Hasher =
        MapToCurveBasedHasher<G2Projective, DefaultFieldHasher<Sha256, 128>, WBMap<ark_bls12_381::g2::Config>>;
    let hasher = Hasher::new(b"QUUX-V01-CS02-with-BLS12381G2_XMD:SHA-256_SSWU_RO_").unwrap();
    let point = hasher.hash(b"").unwrap();
    let hex_of = |value: &Fq| hex::encode(value.into_bigint().to_bytes_be());
    assert_eq!(
        hex_of(&point.x.c0),
        "0141ebfbdca40eb85b87142e130ab689c673cf60f1a3e98d69335266f30d9b8d4ac44c1038e9dcdd5393faf5c41fb78a"
    );
    assert_eq!(
        hex_of(&point.x.c1),
        "05cb8437535e20ecffaef7752baddf98034139c38452458baeefab379ba13dff5bf5dd71b72418717047f5b0f37da03d"
    );
}
