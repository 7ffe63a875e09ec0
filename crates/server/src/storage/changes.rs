//! Change notifications: what a listener hears, and the payload format of the PostgreSQL
//! channel that sequencing rounds notify (`app\nidentity\nidentity…`).

use std::collections::BTreeSet;

use crate::domain::{AppId, Identity};

/// What a change listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Listening from now on: changes from here on will be heard.
    Listening,
    /// The listening connection was lost: changes may have been missed.
    Lost,
    /// These identities of the app changed.
    Changed {
        /// The app.
        app_id: AppId,
        /// Its changed identities.
        identities: Vec<Identity>,
    },
}

/// The PostgreSQL channel that sequencing rounds notify.
pub const CHANGES_CHANNEL: &str = "cardinal_changes";

/// PostgreSQL refuses payloads of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7000;

/// The notifications announcing that `identities` of `app_id` changed, each under the payload
/// limit. Neither app ids nor identities contain a newline.
pub fn change_payloads(app_id: &AppId, identities: &BTreeSet<Identity>) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::new();
    for identity in identities {
        if !current.is_empty() && current.len() + 1 + identity.as_str().len() > MAX_PAYLOAD {
            payloads.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(app_id.as_str());
        }
        current.push('\n');
        current.push_str(identity.as_str());
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
}

/// Reads a payload of [`change_payloads`]; `None` if it is not one.
pub fn parse_change_payload(payload: &str) -> Option<Heard> {
    let mut lines = payload.split('\n');
    let app_id = AppId::parse(lines.next()?).ok()?;
    let identities = lines.map(Identity::parse).collect::<Result<_, _>>().ok()?;
    Some(Heard::Changed { app_id, identities })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_payloads_stay_under_the_notify_limit_and_read_back() {
        let identities: BTreeSet<Identity> =
            (0..40).map(|n| Identity::parse(&format!("{n:03}{}", "x".repeat(997))).unwrap()).collect();
        let chat = AppId::parse("chat").unwrap();
        let payloads = change_payloads(&chat, &identities);
        assert!(payloads.len() > 1);
        let mut heard = Vec::new();
        for payload in &payloads {
            assert!(payload.len() < 8000, "{}", payload.len());
            match parse_change_payload(payload) {
                Some(Heard::Changed { app_id, identities }) => {
                    assert_eq!(app_id, chat);
                    heard.extend(identities);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(heard, identities.into_iter().collect::<Vec<_>>());
        assert!(change_payloads(&chat, &BTreeSet::new()).is_empty());
        assert_eq!(parse_change_payload(""), None);
        assert_eq!(parse_change_payload("chat\n"), None, "an empty identity is not one");
    }
}
