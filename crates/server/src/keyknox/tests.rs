//! The rules on the memory store.
#![allow(clippy::unwrap_used, clippy::panic, reason = "a test fails by panicking")]

use std::sync::Arc;

use cardinal_card::log::EventKind;

use super::*;
use crate::clock::ManualClock;
use crate::domain::{AppId, CardsPerIdentity};
use crate::storage::memory::MemoryStore;
use crate::storage::{AppRecord, AppStore, EventDraft};

const LIMITS: KeyknoxLimits = KeyknoxLimits {
    meta_bytes: 64,
    value_bytes: 32,
    readers_per_entry: 3,
    entries_per_identity: 2,
    name_bytes: 16,
    identity_bytes: 32,
};

async fn keyknox() -> Keyknox {
    let store = Arc::new(MemoryStore::new());
    let app =
        AppRecord { id: AppId::parse("app").unwrap(), cards_per_identity: CardsPerIdentity::Single, created_at: 1 };
    let event = EventDraft {
        kind: EventKind::AppCreated,
        at_ms: 0,
        card_id: None,
        identity: None,
        actor: "test".into(),
        detail: Default::default(),
    };
    store.create_app(&app, event).await.unwrap();
    Keyknox::new(store, LIMITS, ManualClock::starting_now())
}

fn user(identity: &str) -> Caller {
    Caller { app_id: AppId::parse("app").unwrap(), subject: Identity::parse(identity).unwrap(), role: KeyRole::App }
}

fn admin() -> Caller {
    Caller { role: KeyRole::Admin, ..user("root") }
}

fn push(key: &str, identities: &[&str], meta: &str) -> PushRequest {
    PushRequest {
        root: "group-sessions".into(),
        path: "p".into(),
        key: key.into(),
        identities: identities.iter().map(|i| (*i).to_owned()).collect(),
        meta: meta.into(),
        value: "v".into(),
    }
}

fn pull(key: &str, owner: &str) -> PullRequest {
    PullRequest { root: "group-sessions".into(), path: "p".into(), key: key.into(), identity: Some(owner.into()) }
}

#[tokio::test]
async fn v1_versions_each_write_and_guards_it_with_the_hash() {
    let keyknox = keyknox().await;
    let alice = user("alice");
    let empty = keyknox.v1_get(&alice).await.unwrap();
    assert_eq!((empty.meta.as_str(), empty.value.as_str(), empty.version.as_str()), ("", "", "1.0"));
    assert_eq!(empty.hash, EMPTY_HASH);

    let first = keyknox.v1_put(&alice, "m", "v", Some(&empty.hash)).await.unwrap();
    assert_eq!(first.version, "1.0");
    assert!(matches!(keyknox.v1_put(&alice, "m2", "v2", None).await, Err(KeyknoxError::HashMismatch)));
    assert!(matches!(keyknox.v1_put(&alice, "m2", "v2", Some(EMPTY_HASH)).await, Err(KeyknoxError::HashMismatch)));
    let second = keyknox.v1_put(&alice, "m2", "v2", Some(&first.hash)).await.unwrap();
    assert_eq!(second.version, "2.0");
    assert_eq!(keyknox.v1_get(&alice).await.unwrap(), second);

    let reset = keyknox.v1_reset(&alice).await.unwrap();
    assert_eq!((reset.meta.as_str(), reset.version.as_str(), reset.hash.as_str()), ("", "3.0", EMPTY_HASH));
    let again = keyknox.v1_put(&alice, "m3", "v3", Some(&reset.hash)).await.unwrap();
    assert_eq!(again.version, "4.0");
    assert_eq!(keyknox.v1_reset(&user("nobody")).await.unwrap().version, "1.0", "nothing stays nothing");
}

#[tokio::test]
async fn content_must_be_two_sided_and_within_the_limits() {
    let keyknox = keyknox().await;
    let alice = user("alice");
    assert!(matches!(keyknox.v1_put(&alice, "m", "", None).await, Err(KeyknoxError::OneSided)));
    assert!(matches!(keyknox.v1_put(&alice, "", "v", None).await, Err(KeyknoxError::OneSided)));
    let long_meta = "m".repeat(65);
    assert!(matches!(
        keyknox.v1_put(&alice, &long_meta, "v", None).await,
        Err(KeyknoxError::TooLarge { field: "meta", max: 64 })
    ));
    assert!(matches!(
        keyknox.push(&alice, &PushRequest { value: "v".repeat(33), ..push("0", &[], "m") }, None).await,
        Err(KeyknoxError::TooLarge { field: "value", max: 32 })
    ));
    assert!(matches!(
        keyknox.push(&alice, &PushRequest { root: "r".repeat(17), ..push("0", &[], "m") }, None).await,
        Err(KeyknoxError::InvalidName(_))
    ));
    assert!(matches!(keyknox.push(&alice, &push("", &[], "m"), None).await, Err(KeyknoxError::InvalidName(_))));
    assert!(matches!(keyknox.push(&alice, &push("a\nb", &[], "m"), None).await, Err(KeyknoxError::InvalidName(_))));
    assert!(matches!(keyknox.push(&alice, &push("0", &[""], "m"), None).await, Err(KeyknoxError::InvalidIdentity(_))));
    assert!(matches!(keyknox.v1_get(&admin()).await, Err(KeyknoxError::Forbidden(_))), "users only");
}

#[tokio::test]
async fn pushes_merge_readers_and_follow_the_hash_protocol() {
    let keyknox = keyknox().await;
    let alice = user("alice");
    let created = keyknox.push(&alice, &push("0", &["alice", "bob", "bob"], "m"), None).await.unwrap();
    let names = |entry: &KeyknoxEntry| entry.readers.iter().map(|r| r.as_str().to_owned()).collect::<Vec<_>>();
    assert_eq!(names(&created), ["alice", "bob"], "the owner first, deduplicated");
    assert!(matches!(keyknox.push(&alice, &push("0", &["carol"], "m2"), None).await, Err(KeyknoxError::EntryExists)));
    assert!(matches!(
        keyknox.push(&alice, &push("0", &["carol"], "m2"), Some("stale")).await,
        Err(KeyknoxError::HashMismatch)
    ));
    let added = keyknox.push(&alice, &push("0", &["carol"], "m2"), Some(&created.hash)).await.unwrap();
    assert_eq!(names(&added), ["alice", "bob", "carol"], "a union");
    assert!(matches!(
        keyknox.push(&alice, &push("0", &["dave"], "m3"), Some(&added.hash)).await,
        Err(KeyknoxError::TooManyReaders { max: 3 })
    ));
    assert!(matches!(
        keyknox.push(&alice, &push("1", &["b", "c", "d"], "m"), None).await,
        Err(KeyknoxError::TooManyReaders { max: 3 })
    ));
    // The first push of a new entry may carry the empty entry's hash.
    keyknox.push(&alice, &push("1", &[], "m"), Some(EMPTY_HASH)).await.unwrap();
    assert!(matches!(
        keyknox.push(&alice, &push("2", &[], "m"), None).await,
        Err(KeyknoxError::TooManyEntries { max: 2 })
    ));
    // The hash is the content's only: readers do not change it.
    assert_eq!(added.hash, content_hash("m2", "v"));
}

#[tokio::test]
async fn owners_and_readers_read_and_nobody_else_does() {
    let keyknox = keyknox().await;
    let alice = user("alice");
    keyknox.push(&alice, &push("0", &["bob"], "m"), None).await.unwrap();
    assert_eq!(keyknox.pull(&user("bob"), &pull("0", "alice")).await.unwrap().meta, "m");
    assert!(matches!(keyknox.pull(&user("mallory"), &pull("0", "alice")).await, Err(KeyknoxError::Forbidden(_))));
    let missing = keyknox.pull(&user("bob"), &pull("9", "alice")).await.unwrap();
    assert_eq!((missing.meta.as_str(), missing.value.as_str(), missing.hash.as_str()), ("", "", EMPTY_HASH));

    let keys = |who: &str| {
        let request =
            KeysRequest { root: Some("group-sessions".into()), path: Some("p".into()), identity: Some("alice".into()) };
        let caller = user(who);
        let keyknox = &keyknox;
        async move { keyknox.keys(&caller, &request).await.unwrap() }
    };
    assert_eq!(keys("bob").await, ["0"]);
    assert!(keys("mallory").await.is_empty());

    // Reset with another identity removes that reader only.
    let reset = ResetRequest {
        root: Some("group-sessions".into()),
        path: Some("p".into()),
        key: None,
        identity: Some("bob".into()),
    };
    keyknox.reset(&alice, &reset).await.unwrap();
    assert!(keys("bob").await.is_empty());
    assert_eq!(keys("alice").await, ["0"]);
    // Without one it deletes.
    let reset = ResetRequest { root: Some("group-sessions".into()), path: Some("p".into()), ..Default::default() };
    let answer = keyknox.reset(&alice, &reset).await.unwrap();
    assert_eq!(answer.key.owner.as_str(), "alice");
    assert!(keys("alice").await.is_empty());
}

#[tokio::test]
async fn an_admin_erases_an_identity_and_only_an_admin() {
    let keyknox = keyknox().await;
    let (alice, bob) = (user("alice"), user("bob"));
    keyknox.v1_put(&bob, "m", "v", None).await.unwrap();
    keyknox.push(&bob, &push("0", &[], "m"), None).await.unwrap();
    keyknox.push(&alice, &push("0", &["bob"], "m"), None).await.unwrap();
    assert!(matches!(keyknox.erase(&bob, "bob").await, Err(KeyknoxError::Forbidden(_))));
    let erased = keyknox.erase(&admin(), "bob").await.unwrap();
    assert_eq!(erased, Erased { v1: true, entries: 1, grants: 1 });
    assert_eq!(keyknox.v1_get(&bob).await.unwrap().version, "1.0");
    assert!(matches!(keyknox.pull(&bob, &pull("0", "alice")).await, Err(KeyknoxError::Forbidden(_))));
}
