//! Card ids: the first 32 bytes of SHA-512 of the snapshot, as lowercase hex.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha512};

use crate::error::CardError;

/// A card id: 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardId(String);

impl CardId {
    /// Derives the id of a card from its decoded snapshot bytes.
    pub fn of_snapshot(snapshot: &[u8]) -> Self {
        let digest = Sha512::digest(snapshot);
        CardId(hex::encode(&digest[..32]))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CardId {
    type Err = CardError;

    /// Accepts only the canonical form: uppercase hex would name the same card twice.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(CardId(s.to_owned()))
        } else {
            Err(CardError::InvalidCardId)
        }
    }
}

impl fmt::Display for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CardId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_accepts_only_64_lowercase_hex() {
        let ok = "6a3d1cc51995c3052b2e17c8b732677d97baf6d1ea1b9fe9c05e8417e5e353c7";
        assert_eq!(ok.parse::<CardId>().map(|id| id.to_string()).as_deref(), Ok(ok));
        assert!(ok.to_uppercase().parse::<CardId>().is_err());
        assert!(ok[..63].parse::<CardId>().is_err());
        assert!(format!("{ok}0").parse::<CardId>().is_err());
        assert!("zz".repeat(32).parse::<CardId>().is_err());
    }
}
