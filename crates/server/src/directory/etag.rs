//! Lookup ETags, derived from per-identity change counters.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// The strong ETag of a lookup of `identities` (sorted, distinct) given their counters.
///
/// Every identity is hashed length-prefixed with its counter (0 if it never changed), so two
/// different batches, or one batch before and after any change, never share a tag. The app is
/// hashed too, so a tag cannot be replayed across apps.
pub fn lookup_etag(app_id: &str, identities: &[String], versions: &[(String, i64)]) -> String {
    let versions = by_identity(versions);
    let mut hasher = Sha256::new();
    hasher.update((app_id.len() as u64).to_be_bytes());
    hasher.update(app_id.as_bytes());
    for identity in identities {
        let version = versions.get(identity.as_str()).copied().unwrap_or(0);
        hasher.update((identity.len() as u64).to_be_bytes());
        hasher.update(identity.as_bytes());
        hasher.update(version.to_be_bytes());
    }
    let digest = hasher.finalize();
    format!("\"l1-{}\"", hex::encode(&digest[..16]))
}

/// Counters by identity; an identity that is absent never changed (its counter is 0).
pub(super) fn by_identity(versions: &[(String, i64)]) -> HashMap<&str, i64> {
    versions.iter().map(|(identity, version)| (identity.as_str(), *version)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_tag_changes_with_any_counter_and_with_the_batch() {
        let batch = ids(&["alice", "bob"]);
        let base = lookup_etag("app", &batch, &[("alice".into(), 1)]);
        assert_eq!(base, lookup_etag("app", &batch, &[("alice".into(), 1), ("carol".into(), 9)]));
        assert_ne!(base, lookup_etag("app", &batch, &[("alice".into(), 2)]));
        assert_ne!(base, lookup_etag("app", &batch, &[("alice".into(), 1), ("bob".into(), 1)]));
        assert_ne!(base, lookup_etag("other", &batch, &[("alice".into(), 1)]));
        assert_ne!(base, lookup_etag("app", &ids(&["alice"]), &[("alice".into(), 1)]));
        assert_ne!(
            lookup_etag("app", &ids(&["ab", "c"]), &[]),
            lookup_etag("app", &ids(&["a", "bc"]), &[]),
            "identities are length-prefixed"
        );
        assert!(base.starts_with("\"l1-") && base.ends_with('"'));
    }
}
