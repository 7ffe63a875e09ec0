//! `Authorization: Bearer …` EdDSA tokens, through the server's pinned-algorithm verifier,
//! including registered keys of every length (a short key used to panic inside jsonwebtoken).
#![no_main]

use cardinal_server::auth::jwt::{eddsa_kid, unverified_claims, verify_eddsa};
use cardinal_server::domain::{AppId, KeyRole};
use cardinal_server::storage::ApiKeyRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (key_len, rest) = match data.split_first() {
        Some((first, rest)) => (usize::from(*first % 40), rest),
        None => return,
    };
    let Ok(token) = std::str::from_utf8(rest) else { return };
    let _ = eddsa_kid(token);
    let _ = unverified_claims(token);
    let public_key = (0..key_len).map(|i| i as u8).collect();
    let app_id = AppId::parse("a").expect("a valid app id");
    let key = ApiKeyRecord { kid: "k".into(), app_id, role: KeyRole::App, public_key, created_at: 0, revoked_at: None };
    let _ = verify_eddsa(token, &key);
});
