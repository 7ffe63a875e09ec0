//! Identities: who a card belongs to inside an app.

use std::fmt;

use crate::error::CardError;

/// The default and largest identity length, in bytes.
pub const MAX_IDENTITY_BYTES: usize = 1024;

/// A user's name inside an app: 1 to 1024 bytes of printable ASCII, compared exactly.
///
/// Printable ASCII only, because the official Virgil clients base64 the snapshot as Latin-1 while
/// signing its UTF-8 bytes: any other character yields a card whose id and signature disagree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity(String);

impl Identity {
    /// Validates an identity against the default limit.
    pub fn parse(s: &str) -> Result<Self, CardError> {
        Self::parse_with_limit(s, MAX_IDENTITY_BYTES)
    }

    /// Validates an identity against a configured limit.
    pub fn parse_with_limit(s: &str, max_bytes: usize) -> Result<Self, CardError> {
        if s.is_empty() {
            return Err(CardError::IdentityEmpty);
        }
        if s.len() > max_bytes {
            return Err(CardError::IdentityTooLong { max: max_bytes });
        }
        if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(CardError::IdentityNotPrintableAscii);
        }
        Ok(Identity(s.to_owned()))
    }

    /// The identity as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Gives back the owned text.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Identity {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_printable_ascii_within_the_limit() {
        assert!(Identity::parse("alice@example.com").is_ok());
        assert!(Identity::parse(" ~").is_ok());
        assert_eq!(Identity::parse(""), Err(CardError::IdentityEmpty));
        assert_eq!(Identity::parse("é"), Err(CardError::IdentityNotPrintableAscii));
        assert_eq!(Identity::parse("a\nb"), Err(CardError::IdentityNotPrintableAscii));
        assert_eq!(Identity::parse("a\u{7f}"), Err(CardError::IdentityNotPrintableAscii));
        assert!(Identity::parse(&"a".repeat(1024)).is_ok());
        assert_eq!(Identity::parse(&"a".repeat(1025)), Err(CardError::IdentityTooLong { max: 1024 }));
        assert_eq!(Identity::parse_with_limit("abc", 2), Err(CardError::IdentityTooLong { max: 2 }));
    }
}
