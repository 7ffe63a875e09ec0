//! Pythia's decoder: blinded passwords as bytes and as the base64 of a request, and the secret's
//! text. Whatever decodes is a point of G1 that re-encodes to the same bytes and evaluates.
#![no_main]

use cardinal_pythia::{BlindedPassword, Scope, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(point) = BlindedPassword::from_bytes(data) {
        assert_eq!(point.to_bytes().as_slice(), data);
        let secret = Secret::parse("cardinal-pythia-v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        let key = secret.key_for(&Scope { app: "fuzz", identity: "alice", brainkey_id: "" });
        assert_eq!(key.evaluate(&point, &mut rand::rngs::OsRng).as_bytes().len(), 384);
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(point) = BlindedPassword::from_base64(text) {
        assert_eq!(point.to_bytes().len(), 49);
    }
    if let Ok(secret) = Secret::parse(text) {
        assert_eq!(secret.to_text().as_str(), text.trim());
    }
});
