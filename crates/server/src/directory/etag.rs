//! When an answer is unchanged: the strong ETags of lookups and of single cards, and the
//! `If-None-Match` test that turns a request into a 304. The routes only carry the header in
//! and the tag out.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::Card;
use crate::domain::{AppId, Identity};
use crate::storage::IdentityState;

/// The strong ETag of a lookup of `identities` (sorted, distinct) given their states.
///
/// Every identity is hashed length-prefixed with its state (an identity without one never had a
/// card), so two different batches, or one batch before and after any change, never share a
/// tag. The state's digest of the active cards makes a tag describe the content itself: after a
/// restore brought counters back to values clients hold, different content still gets a
/// different tag, and unchanged content still the same. The app is hashed too, so a tag cannot
/// be replayed across apps.
pub fn lookup_etag(app_id: &AppId, identities: &[Identity], states: &[(Identity, IdentityState)]) -> String {
    let states = by_identity(states);
    let mut hasher = Sha256::new();
    hash_part(&mut hasher, app_id.as_str());
    for identity in identities {
        let state = states.get(identity).copied().unwrap_or(IdentityState::NEVER);
        hash_part(&mut hasher, identity.as_str());
        hasher.update(state.version.to_be_bytes());
        match state.digest {
            Some(digest) => {
                hasher.update([1]);
                hasher.update(digest);
            }
            None => hasher.update([0]),
        }
    }
    format!("\"l2-{}\"", hex::encode(&hasher.finalize()[..16]))
}

/// The strong ETag of one card's representation: it changes when its status does.
pub fn card_etag(card: &Card) -> String {
    let record = &card.record;
    let mut hasher = Sha256::new();
    for part in [
        record.id.as_str(),
        card.status().as_str(),
        record.superseded_by.as_ref().map_or("", |id| id.as_str()),
        record.revocation_reason.as_deref().unwrap_or(""),
    ] {
        hash_part(&mut hasher, part);
    }
    hasher.update(record.revoked_at.unwrap_or(0).to_be_bytes());
    format!("\"c1-{}\"", hex::encode(&hasher.finalize()[..16]))
}

fn hash_part(hasher: &mut Sha256, part: &str) {
    hasher.update((part.len() as u64).to_be_bytes());
    hasher.update(part.as_bytes());
}

/// States by identity; an identity that is absent never had a card.
pub(super) fn by_identity(states: &[(Identity, IdentityState)]) -> HashMap<&Identity, IdentityState> {
    states.iter().map(|(identity, state)| (identity, *state)).collect()
}

/// The tags of a request's `If-None-Match` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfNoneMatch {
    tags: Vec<String>,
    any: bool,
}

impl IfNoneMatch {
    /// Reads the header's values (comma-separated lists, possibly several headers). Tags are
    /// compared weakly, as RFC 9110 prescribes for `If-None-Match`.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut condition = IfNoneMatch::default();
        for candidate in values.into_iter().flat_map(|value| value.split(',')) {
            let candidate = candidate.trim();
            if candidate == "*" {
                condition.any = true;
            } else if !candidate.is_empty() {
                condition.tags.push(candidate.trim_start_matches("W/").to_owned());
            }
        }
        condition
    }

    /// Whether the request asks for revalidation at all.
    pub fn is_present(&self) -> bool {
        self.any || !self.tags.is_empty()
    }

    /// Whether `etag` is one the client holds (then the answer is a 304).
    pub fn matches(&self, etag: &str) -> bool {
        self.any || self.tags.iter().any(|tag| tag == etag.trim_start_matches("W/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CardId;
    use crate::storage::active_digest;

    fn ids(list: &[&str]) -> Vec<Identity> {
        list.iter().map(|s| Identity::parse(s).unwrap()).collect()
    }

    fn v(identity: &str, version: i64) -> (Identity, IdentityState) {
        let id: CardId = format!("{version:064x}").parse().unwrap();
        (Identity::parse(identity).unwrap(), IdentityState { version, digest: Some(active_digest([&id])) })
    }

    #[test]
    fn the_tag_changes_with_any_state_and_with_the_batch() {
        let app = AppId::parse("app").unwrap();
        let batch = ids(&["alice", "bob"]);
        let base = lookup_etag(&app, &batch, &[v("alice", 1)]);
        assert_eq!(base, lookup_etag(&app, &batch, &[v("alice", 1), v("carol", 9)]));
        assert_ne!(base, lookup_etag(&app, &batch, &[v("alice", 2)]));
        assert_ne!(base, lookup_etag(&app, &batch, &[v("alice", 1), v("bob", 1)]));
        assert_ne!(base, lookup_etag(&AppId::parse("other").unwrap(), &batch, &[v("alice", 1)]));
        assert_ne!(base, lookup_etag(&app, &ids(&["alice"]), &[v("alice", 1)]));
        assert_ne!(
            lookup_etag(&app, &ids(&["ab", "c"]), &[]),
            lookup_etag(&app, &ids(&["a", "bc"]), &[]),
            "identities are length-prefixed"
        );
        assert!(base.starts_with("\"l2-") && base.ends_with('"'));
    }

    #[test]
    fn the_same_counter_over_other_cards_is_another_tag() {
        // What a restore does: the counter climbs back to a value a client holds, over a card
        // that did not exist when the client's tag was made.
        let app = AppId::parse("app").unwrap();
        let batch = ids(&["alice"]);
        let (alice, before) = v("alice", 3);
        let after = IdentityState { version: 3, ..v("alice", 4).1 };
        assert_ne!(
            lookup_etag(&app, &batch, &[(alice.clone(), before)]),
            lookup_etag(&app, &batch, &[(alice.clone(), after)])
        );
        let unknown = IdentityState { version: 3, digest: None };
        assert_ne!(
            lookup_etag(&app, &batch, &[(alice.clone(), before)]),
            lookup_etag(&app, &batch, &[(alice, unknown)])
        );
    }

    #[test]
    fn if_none_match_reads_lists_stars_and_weak_tags() {
        let condition = IfNoneMatch::parse(["\"a\", W/\"b\"", "\"c\""]);
        assert!(condition.is_present());
        for tag in ["\"a\"", "\"b\"", "W/\"c\""] {
            assert!(condition.matches(tag), "{tag}");
        }
        assert!(!condition.matches("\"d\""));
        assert!(IfNoneMatch::parse(["*"]).matches("\"anything\""));
        assert!(!IfNoneMatch::parse(std::iter::empty()).is_present());
        assert!(!IfNoneMatch::parse([" , "]).matches("\"a\""));
    }
}
