//! A published card's JSON, parsed and verified as the server and the SDK do.
#![no_main]

use cardinal_card::{FormatLimits, ParsedCard, RawSignedModel, SigningKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = serde_json::from_slice::<RawSignedModel>(data) else { return };
    if let Ok(card) = ParsedCard::parse(raw.clone(), &FormatLimits::default()) {
        // Whatever parses must be self-consistent: its id is the hash of its snapshot.
        assert_eq!(card.id, cardinal_card::CardId::of_snapshot(&card.snapshot));
        assert_eq!(card.content.identity.as_str().len() <= 1024, true);
    }
    if let Ok(card) = ParsedCard::parse_published(raw, &FormatLimits::default()) {
        let service = SigningKey::from_seed(&[7u8; 32]).public_key();
        let _ = card.has_valid_countersignature(&service);
    }
});
