//! The directory's vocabulary, below auth, the rules and storage: apps, who calls, what a key may
//! do. Card ids and identities are `cardinal-card`'s types, re-exported here so that every layer
//! holds parsed values, never bare strings.

use std::fmt;

use thiserror::Error;

pub use cardinal_card::{CardId, Identity};

/// An app id: 1 to 64 characters of A-Z, a-z, 0-9, `-`, `_` and `.` (URL- and JWT-safe).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(String);

/// An app id that does not have the allowed form.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("app ids are 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'")]
pub struct InvalidAppId;

impl AppId {
    /// The longest app id.
    pub const MAX_LEN: usize = 64;

    /// Validates an app id.
    pub fn parse(id: &str) -> Result<Self, InvalidAppId> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        if id.is_empty() || id.len() > Self::MAX_LEN || !id.bytes().all(allowed) {
            return Err(InvalidAppId);
        }
        Ok(AppId(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an API key may mint tokens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// User tokens: publish and revoke one identity's cards, look up.
    App,
    /// Admin tokens: revoke any card, read the event log.
    Admin,
}

impl KeyRole {
    /// As stored and typed.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::App => "app",
            KeyRole::Admin => "admin",
        }
    }

    /// Parses the stored or typed name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "app" => Some(KeyRole::App),
            "admin" => Some(KeyRole::Admin),
            _ => None,
        }
    }
}

/// Whether an app allows one live chain per identity or several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardsPerIdentity {
    /// One live chain per identity (the default): a second root card is refused.
    Single,
    /// Independent chains may coexist.
    Multiple,
}

impl CardsPerIdentity {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CardsPerIdentity::Single => "single",
            CardsPerIdentity::Multiple => "multiple",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "single" => Some(CardsPerIdentity::Single),
            "multiple" => Some(CardsPerIdentity::Multiple),
            _ => None,
        }
    }
}

/// Who is calling, as established from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The app the token is scoped to.
    pub app_id: AppId,
    /// The token's subject: a user's identity, or an admin's name.
    pub subject: Identity,
    /// The role of the key that signed the token.
    pub role: KeyRole,
}

impl Caller {
    /// How the event log names this caller.
    pub fn actor(&self) -> String {
        match self.role {
            KeyRole::App => format!("user:{}", self.subject),
            KeyRole::Admin => format!("admin:{}", self.subject),
        }
    }

    /// Whether the caller acts for this identity with a user token.
    pub fn is_user(&self, identity: &Identity) -> bool {
        self.role == KeyRole::App && &self.subject == identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_are_short_and_url_safe() {
        for good in ["default", "chat-2", "a.b_c", &"x".repeat(64)] {
            assert_eq!(AppId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "has space", "ünï", "a/b", &"x".repeat(65)] {
            assert_eq!(AppId::parse(bad), Err(InvalidAppId), "{bad:?}");
        }
    }

    #[test]
    fn roles_and_policies_round_trip_their_stored_names() {
        for role in [KeyRole::App, KeyRole::Admin] {
            assert_eq!(KeyRole::parse(role.as_str()), Some(role));
        }
        for policy in [CardsPerIdentity::Single, CardsPerIdentity::Multiple] {
            assert_eq!(CardsPerIdentity::parse(policy.as_str()), Some(policy));
        }
        assert_eq!(KeyRole::parse("root"), None);
        assert_eq!(CardsPerIdentity::parse("some"), None);
    }
}
