//! `Authorization: Virgil …` tokens, parsed and verified over the received bytes.
#![no_main]

use cardinal_card::SigningKey;
use cardinal_card::virgil_jwt::VirgilJwt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    if let Ok(jwt) = VirgilJwt::parse(token) {
        let key = SigningKey::from_seed(&[0x40u8; 32]).public_key();
        let _ = jwt.verify(&key);
        let _ = (jwt.app_id(), jwt.identity());
    }
});
