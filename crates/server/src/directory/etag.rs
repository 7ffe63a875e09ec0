//! When an answer is unchanged: the strong ETags of lookups and of single cards, and the
//! `If-None-Match` test that turns a request into a 304. The routes only carry the header in
//! and the tag out.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::Card;
use crate::domain::{AppId, Identity};

/// The strong ETag of a lookup of `identities` (sorted, distinct) given their counters.
///
/// Every identity is hashed length-prefixed with its counter (0 if it never changed), so two
/// different batches, or one batch before and after any change, never share a tag. The app is
/// hashed too, so a tag cannot be replayed across apps.
pub fn lookup_etag(app_id: &AppId, identities: &[Identity], versions: &[(Identity, i64)]) -> String {
    let versions = by_identity(versions);
    let mut hasher = Sha256::new();
    hash_part(&mut hasher, app_id.as_str());
    for identity in identities {
        hash_part(&mut hasher, identity.as_str());
        hasher.update(versions.get(identity).copied().unwrap_or(0).to_be_bytes());
    }
    format!("\"l1-{}\"", hex::encode(&hasher.finalize()[..16]))
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

/// Counters by identity; an identity that is absent never changed (its counter is 0).
pub(super) fn by_identity(versions: &[(Identity, i64)]) -> HashMap<&Identity, i64> {
    versions.iter().map(|(identity, version)| (identity, *version)).collect()
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

    fn ids(list: &[&str]) -> Vec<Identity> {
        list.iter().map(|s| Identity::parse(s).unwrap()).collect()
    }

    fn v(identity: &str, version: i64) -> (Identity, i64) {
        (Identity::parse(identity).unwrap(), version)
    }

    #[test]
    fn the_tag_changes_with_any_counter_and_with_the_batch() {
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
        assert!(base.starts_with("\"l1-") && base.ends_with('"'));
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
