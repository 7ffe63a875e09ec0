//! The directory's rules on the in-memory store: no database, no HTTP.

use std::sync::Arc;
use std::time::Duration;

use cardinal_card::card::CardBuilder;
use cardinal_card::log::EventKind;
use cardinal_card::wire::CardStatus;
use cardinal_card::{CardId, FormatLimits, RawSignedModel, SigningKey};

use super::{Directory, DirectoryError, IfNoneMatch, Lookup, Revoker, Rules};
use crate::clock::{Clock, ManualClock};
use crate::domain::{AppId, Caller, CardsPerIdentity, Identity, KeyRole};
use crate::storage::memory::MemoryStore;
use crate::storage::{AppRecord, AppStore, EventDraft, EventLog, Store};

fn rules() -> Rules {
    Rules {
        format: FormatLimits::default(),
        identities_per_lookup: 100,
        reason_max_bytes: 64,
        events_page_max: 1000,
        live_chains_per_identity: 2,
        search_cards_per_chain: 2,
        answer_bytes: 1 << 20,
    }
}

struct World {
    directory: Directory,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    app: AppId,
}

async fn world(policy: CardsPerIdentity) -> World {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::starting_now();
    let app = AppId::parse("app").unwrap();
    let record = AppRecord { id: app.clone(), cards_per_identity: policy, created_at: clock.unix() };
    let event = EventDraft {
        kind: EventKind::AppCreated,
        at_ms: clock.now().timestamp_millis(),
        card_id: None,
        identity: None,
        actor: "test".into(),
        detail: Default::default(),
    };
    store.create_app(&record, event).await.unwrap();
    let as_store: Arc<dyn Store> = store.clone();
    let directory = Directory::new(as_store, SigningKey::from_seed(&[9; 32]), rules(), clock.clone());
    World { directory, store, clock, app }
}

impl World {
    fn user(&self, identity: &str) -> Caller {
        Caller { app_id: self.app.clone(), subject: Identity::parse(identity).unwrap(), role: KeyRole::App }
    }

    fn admin(&self) -> Caller {
        Caller { app_id: self.app.clone(), subject: Identity::parse("root").unwrap(), role: KeyRole::Admin }
    }

    fn card(&self, identity: &str, previous: Option<&CardId>) -> (CardId, RawSignedModel) {
        let key = SigningKey::generate();
        let mut builder = CardBuilder::new(Identity::parse(identity).unwrap(), &key, self.clock.unix());
        if let Some(previous) = previous {
            builder = builder.previous(previous.clone());
        }
        builder.build()
    }

    async fn publish(&self, identity: &str, previous: Option<&CardId>) -> Result<CardId, DirectoryError> {
        let (id, raw) = self.card(identity, previous);
        self.directory.publish(&self.user(identity), raw).await.map(|card| card.record.id).inspect(|published| {
            assert_eq!(*published, id);
        })
    }

    fn ids(&self, identities: &[&str]) -> Vec<Identity> {
        self.directory.lookup_identities(identities.iter().copied(), super::Count::Listed).unwrap()
    }
}

#[tokio::test]
async fn a_root_then_rotations_form_one_chain_and_only_the_head_is_active() {
    let w = world(CardsPerIdentity::Single).await;
    let root = w.publish("alice", None).await.unwrap();
    w.clock.advance(Duration::from_secs(1));
    let second = w.publish("alice", Some(&root)).await.unwrap();
    let found = w.directory.search(&w.user("bob"), &w.ids(&["alice", "carol"])).await.unwrap();
    let alice = &found[&Identity::parse("alice").unwrap()];
    assert_eq!(alice.iter().map(|c| c.record.id.clone()).collect::<Vec<_>>(), vec![second.clone()]);
    assert_eq!(alice[0].record.chain_id, root);
    assert_eq!(alice[0].record.chain_index, 1);
    assert!(found[&Identity::parse("carol").unwrap()].is_empty(), "every identity asked for is a key");
    let old = w.directory.get(&w.user("alice"), root.as_str()).await.unwrap();
    assert_eq!(old.status(), CardStatus::Superseded);
    assert_eq!(old.record.superseded_by, Some(second));
}

#[tokio::test]
async fn rotation_conflicts_are_named() {
    let w = world(CardsPerIdentity::Single).await;
    let root = w.publish("alice", None).await.unwrap();
    assert!(matches!(w.publish("alice", None).await, Err(DirectoryError::IdentityTaken)));
    let (_, theirs) = w.card("mallory", Some(&root));
    assert!(matches!(w.directory.publish(&w.user("mallory"), theirs).await, Err(DirectoryError::PreviousCardMismatch)));
    w.publish("alice", Some(&root)).await.unwrap();
    assert!(matches!(w.publish("alice", Some(&root)).await, Err(DirectoryError::AlreadySuperseded)));
    let unknown: CardId = "ab".repeat(32).parse().unwrap();
    assert!(matches!(w.publish("alice", Some(&unknown)).await, Err(DirectoryError::PreviousCardNotFound)));
    let (_, raw) = w.card("alice", None);
    assert!(matches!(w.directory.publish(&w.user("bob"), raw).await, Err(DirectoryError::IdentityMismatch { .. })));
    let (_, raw) = w.card("alice", None);
    assert!(matches!(w.directory.publish(&w.admin(), raw).await, Err(DirectoryError::Forbidden(_))));
}

#[tokio::test]
async fn a_republished_card_exists_and_the_multiple_policy_caps_live_chains() {
    let w = world(CardsPerIdentity::Multiple).await;
    let (_, raw) = w.card("alice", None);
    w.directory.publish(&w.user("alice"), raw.clone()).await.unwrap();
    assert!(matches!(w.directory.publish(&w.user("alice"), raw).await, Err(DirectoryError::CardExists)));
    w.publish("alice", None).await.unwrap();
    assert!(matches!(w.publish("alice", None).await, Err(DirectoryError::TooManyChains { max: 2 })));
}

#[tokio::test]
async fn revocation_ends_the_chain_for_owners_and_admins_with_the_right_rules() {
    let w = world(CardsPerIdentity::Single).await;
    let root = w.publish("alice", None).await.unwrap();
    let head = w.publish("alice", Some(&root)).await.unwrap();
    let bob = w.user("bob");
    assert!(matches!(
        w.directory.revoke(&bob, Revoker::Owner, root.as_str(), None).await,
        Err(DirectoryError::Forbidden(_))
    ));
    assert!(matches!(
        w.directory.revoke(&w.admin(), Revoker::Admin, root.as_str(), None).await,
        Err(DirectoryError::InvalidReason(_))
    ));
    assert!(matches!(
        w.directory.revoke(&w.user("alice"), Revoker::Admin, root.as_str(), Some("x".into())).await,
        Err(DirectoryError::Forbidden(_))
    ));
    let revoked =
        w.directory.revoke(&w.user("alice"), Revoker::Owner, root.as_str(), Some("lost".into())).await.unwrap();
    assert_eq!(revoked.status(), CardStatus::Revoked);
    let again = w.directory.revoke(&w.admin(), Revoker::Admin, head.as_str(), Some("again".into())).await.unwrap();
    assert_eq!(again.record.revocation_reason.as_deref(), Some("lost"), "repeating changes nothing");
    assert!(w.directory.search(&bob, &w.ids(&["alice"])).await.unwrap().values().all(Vec::is_empty));
    assert!(matches!(w.publish("alice", Some(&head)).await, Err(DirectoryError::ChainRevoked)));
    let hidden = w.directory.get(&bob, head.as_str()).await.unwrap();
    assert_eq!((hidden.status(), hidden.record.revocation_reason), (CardStatus::Revoked, None));
    w.publish("alice", None).await.expect("a revoked chain frees the identity");
}

#[tokio::test]
async fn a_lookup_is_not_modified_until_an_identity_changes() {
    let w = world(CardsPerIdentity::Single).await;
    let reader = w.user("bob");
    let batch = w.ids(&["alice", "carol"]);
    let Lookup::Found { etag: empty, .. } = w.directory.lookup(&reader, &batch, &IfNoneMatch::default()).await.unwrap()
    else {
        panic!("no condition, a full answer")
    };
    let held = IfNoneMatch::parse([empty.as_str()]);
    assert!(matches!(w.directory.lookup(&reader, &batch, &held).await.unwrap(), Lookup::NotModified { .. }));
    let root = w.publish("alice", None).await.unwrap();
    let Lookup::Found { etag, value } = w.directory.lookup(&reader, &batch, &held).await.unwrap() else {
        panic!("alice changed")
    };
    assert_ne!(etag, empty);
    assert_eq!(value[&Identity::parse("alice").unwrap()][0].record.id, root);
    let card = w.directory.get_conditional(&reader, root.as_str(), &IfNoneMatch::default()).await.unwrap();
    let Lookup::Found { etag: card_tag, .. } = card else { panic!("no condition") };
    let condition = IfNoneMatch::parse([card_tag.as_str()]);
    assert!(matches!(
        w.directory.get_conditional(&reader, root.as_str(), &condition).await.unwrap(),
        Lookup::NotModified { .. }
    ));
    w.directory.revoke(&w.user("alice"), Revoker::Owner, root.as_str(), None).await.unwrap();
    assert!(matches!(
        w.directory.get_conditional(&reader, root.as_str(), &condition).await.unwrap(),
        Lookup::Found { .. }
    ));
}

#[tokio::test]
async fn lookups_are_validated_and_bounded() {
    let w = world(CardsPerIdentity::Single).await;
    let d = &w.directory;
    assert!(matches!(d.lookup_identities(std::iter::empty(), super::Count::Listed), Err(DirectoryError::NoIdentities)));
    let many: Vec<String> = (0..101).map(|n| format!("u{n}")).collect();
    assert!(matches!(
        d.lookup_identities(many.iter().map(String::as_str), super::Count::Listed),
        Err(DirectoryError::TooManyIdentities { max: 100 })
    ));
    let repeated = vec!["a"; 150];
    assert_eq!(d.lookup_identities(repeated.iter().copied(), super::Count::Distinct).unwrap().len(), 1);
    assert!(matches!(
        d.lookup_identities(repeated.iter().copied(), super::Count::Listed),
        Err(DirectoryError::TooManyIdentities { .. })
    ));
    assert!(matches!(
        d.lookup_identities(["caf\u{e9}"], super::Count::Listed),
        Err(DirectoryError::InvalidIdentity(_))
    ));
    assert!(matches!(d.get(&w.user("a"), "nope").await, Err(DirectoryError::InvalidCardId)));
}

#[tokio::test]
async fn a_virgil_search_returns_the_newest_cards_of_each_chain() {
    let w = world(CardsPerIdentity::Single).await;
    let mut previous = w.publish("alice", None).await.unwrap();
    let mut chain = vec![previous.clone()];
    for _ in 0..3 {
        previous = w.publish("alice", Some(&previous)).await.unwrap();
        chain.push(previous.clone());
    }
    let cards = w.directory.unrevoked_chains(&w.user("bob"), &w.ids(&["alice"])).await.unwrap();
    let mut ids: Vec<CardId> = cards.into_iter().map(|c| c.record.id).collect();
    ids.sort();
    let mut newest = chain[2..].to_vec();
    newest.sort();
    assert_eq!(ids, newest, "search_cards_per_chain = 2");
}

#[tokio::test]
async fn every_change_is_one_event_in_order_with_the_directorys_time() {
    let w = world(CardsPerIdentity::Single).await;
    let root = w.publish("alice", None).await.unwrap();
    w.clock.advance(Duration::from_secs(5));
    let at = w.clock.now().timestamp_millis();
    let head = w.publish("alice", Some(&root)).await.unwrap();
    w.directory.revoke(&w.admin(), Revoker::Admin, head.as_str(), Some("left".into())).await.unwrap();
    assert!(matches!(w.directory.events(&w.user("alice"), 0, 10).await, Err(DirectoryError::Forbidden(_))));
    assert!(matches!(w.directory.events(&w.admin(), -1, 10).await, Err(DirectoryError::InvalidPage(_))));
    let events = w.directory.events(&w.admin(), 0, 10).await.unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.body).unwrap()["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["app_created", "card_published", "card_published", "card_superseded", "chain_revoked"]);
    let rotation: serde_json::Value = serde_json::from_str(&events[2].body).unwrap();
    assert_eq!(rotation["at"], at);
    let tail = crate::storage::EventsQuery { app_id: &w.app, after: 4, limit: 10, max_bytes: usize::MAX };
    assert_eq!(w.store.list_events(tail).await.unwrap().len(), 1);
}
