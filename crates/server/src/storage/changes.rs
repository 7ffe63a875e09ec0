//! Change notifications: what a listener hears, and the payload formats of the PostgreSQL
//! channel: sequencing rounds notify changes (`app\nidentity\nidentity…`), and each listener
//! sends itself probes (`#probe <listener> <sequence>`) to prove that it still hears the channel.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::domain::{AppId, Identity};

/// What a change listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Listening from now on: changes from here on will be heard.
    Listening,
    /// The listening connection was lost: changes may have been missed.
    Lost,
    /// Every change committed before `as_of` has been heard: the listener heard a probe it sent
    /// at that instant through the same path writes notify by, and the channel delivers in
    /// commit order.
    Confirmed {
        /// When the probe was sent (before its commit).
        as_of: Instant,
    },
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

/// What a notification on [`CHANGES_CHANNEL`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Identities changed ([`Heard::Changed`]).
    Changed(Heard),
    /// A listener's probe: `listener` is its random name, `sequence` the probe's number.
    Probe {
        /// The listener that sent it.
        listener: String,
        /// Its number, counting up from 0.
        sequence: u64,
    },
}

const PROBE_PREFIX: &str = "#probe ";

/// The payload of a listener's probe. `#` is in no app id, so no change payload starts so.
pub fn probe_payload(listener: &str, sequence: u64) -> String {
    format!("{PROBE_PREFIX}{listener} {sequence}")
}

/// Reads a notification; `None` if it is neither a change nor a probe.
pub fn parse_notification(payload: &str) -> Option<Notification> {
    match payload.strip_prefix(PROBE_PREFIX) {
        Some(probe) => {
            let (listener, sequence) = probe.split_once(' ')?;
            Some(Notification::Probe { listener: listener.to_owned(), sequence: sequence.parse().ok()? })
        }
        None => parse_change_payload(payload).map(Notification::Changed),
    }
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

    #[test]
    fn probes_read_back_and_are_never_changes() {
        let payload = probe_payload("3f2a", 17);
        assert_eq!(parse_notification(&payload), Some(Notification::Probe { listener: "3f2a".into(), sequence: 17 }));
        assert_eq!(parse_change_payload(&payload), None, "a probe is no app's change");
        assert_eq!(parse_notification("#probe 3f2a x"), None);
        assert_eq!(parse_notification("#probe"), None);
        let change = &change_payloads(&AppId::parse("chat").unwrap(), &[Identity::parse("ann").unwrap()].into())[0];
        assert!(matches!(parse_notification(change), Some(Notification::Changed(Heard::Changed { .. }))));
    }
}
