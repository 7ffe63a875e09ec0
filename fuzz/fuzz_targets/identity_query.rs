//! Lookup query strings and path ids, parsed as the lookup handler and the router parse them.
#![no_main]

use cardinal_card::{CardId, Identity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    if let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) {
        for (key, value) in pairs.iter().filter(|(key, _)| key == "identity") {
            if let Ok(identity) = Identity::parse(value) {
                assert!(identity.as_str().bytes().all(|b| (0x20..=0x7e).contains(&b)), "{key}");
                assert!(!identity.as_str().is_empty() && identity.as_str().len() <= 1024);
            }
        }
    }
    if let Ok(id) = query.parse::<CardId>() {
        assert_eq!(id.as_str(), query);
    }
});
