//! Every vector of the official Virgil packages (tests/vectors/virgil.json) against this crate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails by panicking")]

use cardinal_card::card::{countersign, verify_countersignature};
use cardinal_card::virgil_jwt::{JwtError, VirgilJwt};
use cardinal_card::{CardId, FormatLimits, ParsedCard, PublicKey, RawSignedModel, SigningKey, b64};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/virgil.json")).unwrap()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or_else(|| panic!("{path:?}"))
}

fn seed(hex_text: &str) -> [u8; 32] {
    hex::decode(hex_text).unwrap().try_into().unwrap()
}

#[test]
fn user_key_exports_match_pkcs8_and_spki_vectors() {
    let v = vectors();
    let key = SigningKey::from_seed(&seed(s(&v, &["user", "seed"])));
    assert_eq!(hex::encode(key.to_pkcs8_der()), s(&v, &["user", "privateKeyDer"]));
    assert_eq!(hex::encode(key.public_key().spki_der()), s(&v, &["user", "publicKeyDer"]));
    assert_eq!(key.public_key().to_spki_base64(), s(&v, &["user", "publicKeyB64"]));
    let imported = SigningKey::from_pkcs8_der(&hex::decode(s(&v, &["user", "privateKeyDer"])).unwrap()).unwrap();
    assert_eq!(imported.public_key(), key.public_key());
}

#[test]
fn signature_of_hello_virgil_is_byte_identical() {
    let key = SigningKey::from_seed(&seed("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
    let expected = "3051300d0609608648016503040203050004403fd11bed7a68a71a3df5e355e5df71c708cab26251444273d664e5c00f79cbb2ba90c28de7a197df76d8b29c5d257b56b1ca9c7540e8fab737dcd94d82358509";
    assert_eq!(hex::encode(key.sign_virgil(b"hello virgil")), expected);
    assert!(key.public_key().verify_virgil(b"hello virgil", &hex::decode(expected).unwrap()));
}

#[test]
fn card_one_parses_with_the_official_id_and_signature() {
    let v = vectors();
    let raw: RawSignedModel = serde_json::from_str(s(&v, &["card", "publishBody"])).unwrap();
    let parsed = ParsedCard::parse(raw, &FormatLimits::default()).unwrap();
    assert_eq!(parsed.id.as_str(), s(&v, &["card", "cardIdNode"]));
    assert_eq!(parsed.id.as_str(), s(&v, &["card", "cardIdSdk"]));
    assert_eq!(String::from_utf8(parsed.snapshot.clone()).unwrap(), s(&v, &["card", "contentSnapshotUtf8"]));
    assert_eq!(
        hex::encode(b64::decode_std(&parsed.raw.signatures[0].signature).unwrap()),
        s(&v, &["card", "selfSignatureHex"])
    );
    assert_eq!(parsed.content.identity.as_str(), "alice");
    assert_eq!(parsed.content.created_at, 1_700_000_000);
}

#[test]
fn building_card_one_reproduces_the_official_bytes() {
    let v = vectors();
    let key = SigningKey::from_seed(&seed(s(&v, &["user", "seed"])));
    let (id, raw) =
        cardinal_card::card::CardBuilder::new(cardinal_card::Identity::parse("alice").unwrap(), &key, 1_700_000_000)
            .build();
    let official: RawSignedModel = serde_json::from_str(s(&v, &["card", "publishBody"])).unwrap();
    assert_eq!(raw, official);
    assert_eq!(id.as_str(), s(&v, &["card", "cardIdNode"]));

    let (id2, raw2) =
        cardinal_card::card::CardBuilder::new(cardinal_card::Identity::parse("alice").unwrap(), &key, 1_700_000_000)
            .previous(id)
            .extra_snapshot(br#"{"k":"v"}"#.to_vec())
            .build();
    let official2: RawSignedModel = serde_json::from_str(s(&v, &["card2", "publishBody"])).unwrap();
    assert_eq!(raw2, official2);
    assert_eq!(id2.as_str(), s(&v, &["card2", "cardId"]));
}

#[test]
fn card_two_rotation_with_extra_snapshot_verifies() {
    let v = vectors();
    let raw: RawSignedModel = serde_json::from_str(s(&v, &["card2", "publishBody"])).unwrap();
    let parsed = ParsedCard::parse(raw, &FormatLimits::default()).unwrap();
    assert_eq!(parsed.id.as_str(), s(&v, &["card2", "cardId"]));
    assert_eq!(parsed.content.previous_card_id, Some(s(&v, &["card", "cardIdNode"]).parse::<CardId>().unwrap()));
    assert_eq!(String::from_utf8(parsed.snapshot).unwrap(), s(&v, &["card2", "contentSnapshotUtf8"]));
}

#[test]
fn service_countersignature_matches_the_official_response() {
    let v = vectors();
    let service = SigningKey::from_seed(&seed(s(&v, &["serverSigned", "serviceSeed"])));
    assert_eq!(hex::encode(service.public_key().spki_der()), s(&v, &["serverSigned", "servicePublicKeyDer"]));
    assert_eq!(service.public_key().to_spki_base64(), s(&v, &["serverSigned", "servicePublicKeyB64"]));

    let raw: RawSignedModel = serde_json::from_str(s(&v, &["card", "publishBody"])).unwrap();
    let parsed = ParsedCard::parse(raw, &FormatLimits::default()).unwrap();
    let mut signed = parsed.raw.clone();
    countersign(&mut signed, &parsed.snapshot, &service);
    let official: RawSignedModel = serde_json::from_str(s(&v, &["serverSigned", "responseBody"])).unwrap();
    assert_eq!(signed, official);
    assert_eq!(serde_json::to_string(&signed).unwrap(), s(&v, &["serverSigned", "responseBody"]));

    let service_public = PublicKey::from_text(s(&v, &["serverSigned", "servicePublicKeyB64"])).unwrap();
    assert!(verify_countersignature(&official, &parsed.snapshot, &service_public));
    let virgil_cloud = PublicKey::from_text("MCowBQYDK2VwAyEAljOYGANYiVq1WbvVvoYIKtvZi2ji9bAhxyu6iV/LF8M=").unwrap();
    assert!(!verify_countersignature(&official, &parsed.snapshot, &virgil_cloud));
}

#[test]
fn virgil_jwt_vectors_verify_over_the_received_bytes() {
    let v = vectors();
    let api = PublicKey::from_text(s(&v, &["jwt", "apiPublicKeyB64"])).unwrap();
    assert_eq!(hex::encode(api.spki_der()), s(&v, &["jwt", "apiPublicKeyDer"]));
    let private = SigningKey::from_text(s(&v, &["jwt", "apiPrivateKeyDerB64"])).unwrap();
    assert_eq!(private.public_key(), api);

    let jwt = VirgilJwt::parse(s(&v, &["jwt", "token"])).unwrap();
    jwt.verify(&api).unwrap();
    assert_eq!(jwt.header.kid, "testkeyid");
    assert_eq!(jwt.app_id(), Some("testapp"));
    assert_eq!(jwt.identity(), Some("alice"));
    assert_eq!((jwt.claims.iat, jwt.claims.exp), (1_700_000_000, 1_700_003_600));

    let with_ada = VirgilJwt::parse(s(&v, &["jwt", "tokenWithAda"])).unwrap();
    with_ada.verify(&api).unwrap();
    assert_eq!(with_ada.identity(), Some("bob"));
    assert_eq!(with_ada.claims.ada, Some(serde_json::json!({"role": "x"})));

    // Minting with the same inputs reproduces the official token byte for byte.
    let minted =
        cardinal_card::virgil_jwt::sign(&private, "testkeyid", "testapp", "alice", 1_700_000_000, 1_700_003_600);
    assert_eq!(minted, s(&v, &["jwt", "token"]));

    let other = SigningKey::from_seed(&[1u8; 32]).public_key();
    assert_eq!(jwt.verify(&other), Err(JwtError::BadSignature));
}
