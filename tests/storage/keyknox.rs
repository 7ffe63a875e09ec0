//! `KeyknoxStore`'s guarantees, on the three stores.

use std::sync::Arc;

use cardinal_card::log::EventKind;
use cardinal_server::storage::keyknox::{EMPTY_HASH, EntryFilter, EntryKey, Push, V1Write, content_hash};
use cardinal_server::storage::{EventsQuery, StorageError, Store, constraint};

use super::{Kind, app, app_id, draft, store, who};

fn conflict<T: std::fmt::Debug>(result: Result<T, StorageError>) -> &'static str {
    match result {
        Err(StorageError::Conflict { constraint }) => constraint,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn key(owner: &str, root: &str, path: &str, name: &str) -> EntryKey {
    EntryKey { app_id: app_id("a"), owner: who(owner), root: root.into(), path: path.into(), key: name.into() }
}

fn push<'a>(
    key: &'a EntryKey,
    readers: &'a [cardinal_server::domain::Identity],
    meta: &'a str,
    previous: Option<&'a str>,
) -> Push<'a> {
    Push { key, readers, meta, value: "v", previous_hash: previous, max_readers: 3, max_entries: 2, at: 1 }
}

fn filter<'a>(
    app: &'a cardinal_server::domain::AppId,
    owner: &'a cardinal_server::domain::Identity,
    root: Option<&'a str>,
    path: Option<&'a str>,
) -> EntryFilter<'a> {
    EntryFilter { app_id: app, owner, root, path, key: None }
}

async fn keyknox_v1_versions_and_compares_hashes(kind: Kind) {
    let (_db, store) = store(kind).await;
    app(store.as_ref(), "a").await;
    let (a, alice) = (app_id("a"), who("alice"));
    assert_eq!(store.keyknox_v1(&a, &alice).await.unwrap(), None);
    assert_eq!(store.reset_keyknox_v1(&a, &alice, 1).await.unwrap(), None, "a reset creates nothing");
    let write = |meta: &'static str, previous: Option<&'static str>| V1Write {
        app_id: &a,
        identity: &alice,
        meta,
        value: "v",
        previous_hash: previous,
        at: 1,
    };
    let first = store.put_keyknox_v1(&write("m1", Some(EMPTY_HASH))).await.unwrap();
    assert_eq!((first.version, first.hash.as_str()), (1, content_hash("m1", "v").as_str()));
    assert_eq!(conflict(store.put_keyknox_v1(&write("m2", None)).await), constraint::KEYKNOX_HASH_MISMATCH);
    assert_eq!(conflict(store.put_keyknox_v1(&write("m2", Some(EMPTY_HASH))).await), constraint::KEYKNOX_HASH_MISMATCH);
    assert_eq!(store.keyknox_v1(&a, &alice).await.unwrap(), Some(first.clone()), "a refused write changes nothing");
    let from_first = V1Write { previous_hash: Some(&first.hash), ..write("m2", None) };
    assert_eq!(store.put_keyknox_v1(&from_first).await.unwrap().version, 2);
    let reset = store.reset_keyknox_v1(&a, &alice, 2).await.unwrap().unwrap();
    assert_eq!((reset.meta.as_str(), reset.version, reset.hash.as_str()), ("", 3, EMPTY_HASH));
    // After a reset, a write needs no hash (the entry is empty), or the empty one.
    assert_eq!(store.put_keyknox_v1(&write("m3", None)).await.unwrap().version, 4);
    let other = V1Write { app_id: &app_id("nope"), ..write("m", None) };
    assert_eq!(conflict(store.put_keyknox_v1(&other).await), constraint::FOREIGN_KEY);
}

async fn keyknox_pushes_merge_readers_and_refuse_without_writing(kind: Kind) {
    let (_db, store) = store(kind).await;
    app(store.as_ref(), "a").await;
    let k = key("alice", "group-sessions", "p", "0");
    let bob = [who("bob"), who("alice")];
    let created = store.push_keyknox(&push(&k, &bob, "m1", None)).await.unwrap();
    assert_eq!(created.readers, [who("alice"), who("bob")]);
    assert_eq!(created.hash, content_hash("m1", "v"));
    assert_eq!(conflict(store.push_keyknox(&push(&k, &[], "m2", None)).await), constraint::KEYKNOX_ENTRY_EXISTS);
    assert_eq!(
        conflict(store.push_keyknox(&push(&k, &[], "m2", Some(EMPTY_HASH))).await),
        constraint::KEYKNOX_HASH_MISMATCH
    );
    let carol = [who("carol")];
    let added = store.push_keyknox(&push(&k, &carol, "m2", Some(&created.hash))).await.unwrap();
    assert_eq!(added.readers, [who("alice"), who("bob"), who("carol")]);
    let dave = [who("dave")];
    assert_eq!(
        conflict(store.push_keyknox(&push(&k, &dave, "m3", Some(&added.hash))).await),
        constraint::KEYKNOX_READERS_PER_ENTRY
    );
    assert_eq!(store.keyknox_entry(&k).await.unwrap(), Some(added.clone()), "refused: nothing written");

    // Entries per owner, counted under the owner's lock; a delete gives room back.
    let second = key("alice", "group-sessions", "p", "1");
    store.push_keyknox(&push(&second, &[], "m", Some(EMPTY_HASH))).await.unwrap();
    let third = key("alice", "e3kit", "backup", "phone");
    assert_eq!(
        conflict(store.push_keyknox(&push(&third, &[], "m", None)).await),
        constraint::KEYKNOX_ENTRIES_PER_IDENTITY
    );
    assert_eq!(store.keyknox_entry(&third).await.unwrap(), None);
    let (a, alice) = (app_id("a"), who("alice"));
    let one = EntryFilter { key: Some("1"), ..filter(&a, &alice, Some("group-sessions"), Some("p")) };
    assert_eq!(store.delete_keyknox(&one).await.unwrap(), 1);
    store.push_keyknox(&push(&third, &[], "m", None)).await.unwrap();
    // Another owner's entries are their own, under the same names.
    store.push_keyknox(&push(&key("bob", "group-sessions", "p", "0"), &[], "b", None)).await.unwrap();
    let unknown_app = EntryKey { app_id: app_id("nope"), ..key("x", "r", "p", "k") };
    assert_eq!(conflict(store.push_keyknox(&push(&unknown_app, &[], "m", None)).await), constraint::FOREIGN_KEY);
}

async fn keyknox_keys_resets_and_erasure_act_on_what_they_name(kind: Kind) {
    let (_db, store) = store(kind).await;
    app(store.as_ref(), "a").await;
    let readers = [who("bob")];
    for name in ["0", "1"] {
        let k = key("alice", "group-sessions", "p", name);
        let p = Push { max_entries: 100, ..push(&k, &readers, "m", None) };
        store.push_keyknox(&p).await.unwrap();
    }
    let other_path = key("alice", "group-sessions", "q", "0");
    store.push_keyknox(&Push { max_entries: 100, ..push(&other_path, &[], "m", None) }).await.unwrap();
    let bobs = key("bob", "group-sessions", "p", "0");
    let alice_reads = [who("alice")];
    store.push_keyknox(&push(&bobs, &alice_reads, "m", None)).await.unwrap();

    let (a, alice, bob, carol) = (app_id("a"), who("alice"), who("bob"), who("carol"));
    let group = filter(&a, &alice, Some("group-sessions"), Some("p"));
    assert_eq!(store.keyknox_keys(&group, &alice).await.unwrap(), ["0", "1"]);
    assert_eq!(store.keyknox_keys(&group, &bob).await.unwrap(), ["0", "1"]);
    assert!(store.keyknox_keys(&group, &carol).await.unwrap().is_empty());
    assert_eq!(store.keyknox_keys(&filter(&a, &alice, None, None), &alice).await.unwrap(), ["0", "1"], "distinct");
    assert!(
        store.keyknox_keys(&filter(&a, &alice, Some("group"), None), &alice).await.unwrap().is_empty(),
        "exact root"
    );

    // Removing a reader never removes the owner, and only touches the owner's entries.
    assert_eq!(store.remove_keyknox_reader(&group, &alice).await.unwrap(), 0);
    let one = EntryFilter { key: Some("1"), ..group.clone() };
    assert_eq!(store.remove_keyknox_reader(&one, &bob).await.unwrap(), 1);
    assert_eq!(store.keyknox_keys(&group, &bob).await.unwrap(), ["0"]);
    let unchanged = store.keyknox_entry(&key("alice", "group-sessions", "p", "1")).await.unwrap().unwrap();
    assert_eq!(
        (unchanged.readers.as_slice(), unchanged.hash.as_str()),
        ([alice.clone()].as_slice(), content_hash("m", "v").as_str())
    );
    assert_eq!(store.delete_keyknox(&group).await.unwrap(), 2);
    assert!(store.keyknox_entry(&key("alice", "group-sessions", "p", "0")).await.unwrap().is_none());
    assert!(store.keyknox_entry(&other_path).await.unwrap().is_some(), "another path stays");

    // Erasure: alice's own, her grants on bob's entry, her v1 entry, and one event.
    let v1 = V1Write { app_id: &a, identity: &alice, meta: "m", value: "v", previous_hash: None, at: 1 };
    store.put_keyknox_v1(&v1).await.unwrap();
    let erased = store.erase_keyknox(&a, &alice, draft(EventKind::KeyknoxErased, None)).await.unwrap();
    assert_eq!((erased.v1, erased.entries, erased.grants), (true, 1, 1));
    assert_eq!(store.keyknox_v1(&a, &alice).await.unwrap(), None);
    assert_eq!(store.keyknox_entry(&bobs).await.unwrap().unwrap().readers, [bob]);
    let events = store.list_events(EventsQuery { app_id: &a, after: 0, limit: 100, max_bytes: 1 << 20 }).await.unwrap();
    let last = &events.last().unwrap().body;
    assert!(last.contains("\"keyknox_erased\""), "{last}");
    assert!(last.contains(r#""detail":{"entries":"1","grants":"1","v1":"true"}"#), "{last}");
    // The owner's count went with the entries: pushes start from zero again.
    for name in ["x", "y"] {
        store.push_keyknox(&push(&key("alice", "r", "p", name), &[], "m", None)).await.unwrap();
    }
}

async fn of_twenty_racing_keyknox_pushes_exactly_one_wins(kind: Kind) {
    let (_db, store) = store(kind).await;
    app(store.as_ref(), "a").await;
    let stored = key("alice", "group-sessions", "p", "stored");
    let start = store.push_keyknox(&push(&stored, &[], "start", None)).await.unwrap().hash;
    for (target, previous) in [(key("alice", "group-sessions", "p", "new"), None), (stored, Some(start))] {
        let tasks: Vec<_> = (0..20)
            .map(|n| {
                let (store, target, previous): (Arc<dyn Store>, _, _) =
                    (store.clone(), target.clone(), previous.clone());
                tokio::spawn(async move {
                    let readers = [who(&format!("reader{n}"))];
                    let meta = format!("m{n}");
                    let p = Push { max_entries: 100, ..push(&target, &readers, &meta, previous.as_deref()) };
                    store.push_keyknox(&p).await.map(|_| n)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(n) => winners.push(n),
                Err(StorageError::Conflict { constraint }) => assert!(
                    [constraint::KEYKNOX_ENTRY_EXISTS, constraint::KEYKNOX_HASH_MISMATCH].contains(&constraint),
                    "{constraint}"
                ),
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "{winners:?}");
        let entry = store.keyknox_entry(&target).await.unwrap().unwrap();
        assert_eq!(entry.meta, format!("m{}", winners[0]));
        assert_eq!(entry.readers, [who("alice"), who(&format!("reader{}", winners[0]))]);
    }
}

async fn of_twenty_racing_keyknox_v1_writes_exactly_one_wins(kind: Kind) {
    let (_db, store) = store(kind).await;
    app(store.as_ref(), "a").await;
    let mut from = EMPTY_HASH.to_owned();
    for round in 0..3 {
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let tasks: Vec<_> = (0..20)
            .map(|n| {
                let (store, from, barrier): (Arc<dyn Store>, String, _) =
                    (store.clone(), from.clone(), barrier.clone());
                tokio::spawn(async move {
                    let (a, alice, meta) = (app_id("a"), who("alice"), format!("m{round}-{n}"));
                    let write = V1Write {
                        app_id: &a,
                        identity: &alice,
                        meta: &meta,
                        value: "v",
                        previous_hash: Some(&from),
                        at: 1,
                    };
                    barrier.wait().await;
                    store.put_keyknox_v1(&write).await.map(|_| n)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(n) => winners.push(n),
                Err(StorageError::Conflict { constraint }) => assert_eq!(constraint, constraint::KEYKNOX_HASH_MISMATCH),
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let stored = store.keyknox_v1(&app_id("a"), &who("alice")).await.unwrap().unwrap();
        assert_eq!((stored.meta, stored.version), (format!("m{round}-{}", winners[0]), round + 1));
        from = stored.hash;
    }
}

on_every_store!(
    of_twenty_racing_keyknox_v1_writes_exactly_one_wins,
    keyknox_v1_versions_and_compares_hashes,
    keyknox_pushes_merge_readers_and_refuse_without_writing,
    keyknox_keys_resets_and_erasure_act_on_what_they_name,
    of_twenty_racing_keyknox_pushes_exactly_one_wins,
);
