//! `cardinal audit`'s replay: the directory's rules, checked over a log's entries alone
//! (docs/TRANSPARENCY.md §6 and §11).
//!
//! Each entry is an [`EventBody`] as the server writes it: `app_created` (`apps.rs`, detail
//! `cards_per_identity`), `key_added` (`kid`, `role`) and `key_revoked` (`kid`), without card or
//! identity; `card_published` (`directory/publish.rs`: a root card with an empty detail, or a
//! rotation with `previous_card_id` and `chain_id`, followed by the previous card's
//! `card_superseded` with `superseded_by`), both by `user:<identity>`; `chain_revoked`
//! (`directory/revoke.rs`: any card of the chain, `chain_id`, an optional `reason`, by the owner
//! or by an admin with a reason); `keyknox_erased` (`keyknox/erase.rs`: an identity, by an admin).
//! A root card's chain is named by the root card's id.
//!
//! Every rule has a name ([`Rule`]); a failure names the entry's index and the rule.

use std::collections::HashMap;
use std::fmt;

use cardinal_card::CardId;
use cardinal_card::log::{EventBody, EventKind};

/// One rule of the directory that the entries can show broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The entry is an event body.
    EventBody,
    /// It re-serialises to the same bytes.
    Canonical,
    /// It is of the audited app.
    App,
    /// Its `seq` is its index + 1.
    Sequence,
    /// Entry 0 is `app_created`, and no other entry is.
    AppCreatedFirst,
    /// The entry carries the fields its kind is written with.
    Fields,
    /// `app_created` states the policy, `single` or `multiple`.
    PolicyRecorded,
    /// `key_added` names a key not added before.
    KeyAddedOnce,
    /// `key_revoked` names a key that was added and is not revoked.
    KeyRevokedLive,
    /// A card is published once.
    CardPublishedOnce,
    /// A card, and a rotation's supersession, are published by `user:<identity>`.
    OwnerPublishes,
    /// Under `single`, a root card only for an identity without a live (unrevoked) chain.
    SinglePolicy,
    /// A rotation names a published card.
    RotationOfPublished,
    /// The identity never changes along a chain (rotation, supersession, revocation).
    SameIdentity,
    /// A rotation's `chain_id` is its previous card's chain.
    RotationChainId,
    /// No rotation into a revoked chain.
    RotationIntoLiveChain,
    /// A rotation names its chain's head (a card not superseded).
    RotationOfHead,
    /// `card_superseded` names the previous card of a rotation that awaits it, and that rotation's
    /// card: exactly one per rotation, after it.
    SupersededAfterRotation,
    /// Between a rotation and its `card_superseded`, nothing else happens to the chain.
    SupersededInPlace,
    /// `chain_revoked` names a published card.
    RevocationOfPublished,
    /// Its `chain_id` is that card's chain.
    RevocationChainId,
    /// A chain is revoked once.
    RevocationOfLiveChain,
    /// A chain is revoked by its owner (`user:<identity>`) or by an admin with a reason.
    Revoker,
    /// Keyknox data is erased by an admin.
    ErasedByAdmin,
}

impl Rule {
    /// The rule's name, as failures print it and docs/TRANSPARENCY.md lists it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::EventBody => "event-body",
            Rule::Canonical => "canonical",
            Rule::App => "app",
            Rule::Sequence => "sequence",
            Rule::AppCreatedFirst => "app-created-first",
            Rule::Fields => "fields",
            Rule::PolicyRecorded => "policy-recorded",
            Rule::KeyAddedOnce => "key-added-once",
            Rule::KeyRevokedLive => "key-revoked-live",
            Rule::CardPublishedOnce => "card-published-once",
            Rule::OwnerPublishes => "owner-publishes",
            Rule::SinglePolicy => "single-policy",
            Rule::RotationOfPublished => "rotation-of-published",
            Rule::SameIdentity => "same-identity",
            Rule::RotationChainId => "rotation-chain-id",
            Rule::RotationIntoLiveChain => "rotation-into-live-chain",
            Rule::RotationOfHead => "rotation-of-head",
            Rule::SupersededAfterRotation => "superseded-after-rotation",
            Rule::SupersededInPlace => "superseded-in-place",
            Rule::RevocationOfPublished => "revocation-of-published",
            Rule::RevocationChainId => "revocation-chain-id",
            Rule::RevocationOfLiveChain => "revocation-of-live-chain",
            Rule::Revoker => "revoker",
            Rule::ErasedByAdmin => "erased-by-admin",
        }
    }
}

/// Where the replay failed: the entry, the rule, and what the entry shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The entry's index (0-based; its `seq` should be one more).
    pub index: usize,
    /// The rule it breaks.
    pub rule: Rule,
    /// What it shows.
    pub why: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {}: rule {}: {}", self.index, self.rule.name(), self.why)
    }
}

/// The app's policy, as its `app_created` entry states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Single,
    Multiple,
}

#[derive(Debug)]
struct CardState {
    identity: String,
    chain: String,
}

/// A rotation whose `card_superseded` has not been seen yet.
#[derive(Debug)]
struct Awaiting {
    previous: String,
    successor: String,
}

#[derive(Debug)]
struct Chain {
    identity: String,
    head: String,
    revoked: bool,
    awaiting: Option<Awaiting>,
}

/// The directory as the entries so far describe it.
#[derive(Debug, Default)]
struct Directory {
    policy: Option<Policy>,
    /// Keys by id: live or revoked.
    keys: HashMap<String, bool>,
    cards: HashMap<String, CardState>,
    chains: HashMap<String, Chain>,
    /// Live chains per identity.
    live: HashMap<String, usize>,
}

type Check = Result<(), (Rule, String)>;

fn check(ok: bool, rule: Rule, why: impl FnOnce() -> String) -> Check {
    if ok { Ok(()) } else { Err((rule, why())) }
}

/// A card id field: present and canonical (64 lowercase hex).
fn card_id<'a>(value: Option<&'a String>, what: &str) -> Result<&'a str, (Rule, String)> {
    match value {
        Some(id) if id.parse::<CardId>().is_ok() => Ok(id),
        Some(id) => Err((Rule::Fields, format!("{what} {id:?} is not a card id"))),
        None => Err((Rule::Fields, format!("no {what}"))),
    }
}

fn detail<'a>(body: &'a EventBody, key: &str) -> Result<&'a String, (Rule, String)> {
    body.detail.get(key).ok_or_else(|| (Rule::Fields, format!("{} without detail {key:?}", body.kind.as_str())))
}

fn identity(body: &EventBody) -> Result<&str, (Rule, String)> {
    match body.identity.as_deref() {
        Some(identity) if !identity.is_empty() => Ok(identity),
        _ => Err((Rule::Fields, format!("{} without an identity", body.kind.as_str()))),
    }
}

/// Events about the app and its keys name no card and no identity.
fn no_card_nor_identity(body: &EventBody) -> Check {
    check(body.card_id.is_none() && body.identity.is_none(), Rule::Fields, || {
        format!("{} names a card or an identity", body.kind.as_str())
    })
}

impl Directory {
    fn apply(&mut self, body: &EventBody) -> Check {
        match body.kind {
            EventKind::AppCreated => self.app_created(body),
            EventKind::KeyAdded => self.key_added(body),
            EventKind::KeyRevoked => self.key_revoked(body),
            EventKind::CardPublished => self.card_published(body),
            EventKind::CardSuperseded => self.card_superseded(body),
            EventKind::ChainRevoked => self.chain_revoked(body),
            EventKind::KeyknoxErased => {
                check(body.card_id.is_none(), Rule::Fields, || "keyknox_erased names a card".into())?;
                identity(body)?;
                check(body.actor.starts_with("admin:"), Rule::ErasedByAdmin, || {
                    format!("keyknox_erased by {:?}, not an admin", body.actor)
                })
            }
        }
    }

    fn app_created(&mut self, body: &EventBody) -> Check {
        no_card_nor_identity(body)?;
        let policy = body.detail.get("cards_per_identity");
        self.policy = match policy.map(String::as_str) {
            Some("single") => Some(Policy::Single),
            Some("multiple") => Some(Policy::Multiple),
            _ => {
                return Err((
                    Rule::PolicyRecorded,
                    format!("cards_per_identity is {policy:?}, not \"single\" or \"multiple\""),
                ));
            }
        };
        Ok(())
    }

    fn key_added(&mut self, body: &EventBody) -> Check {
        no_card_nor_identity(body)?;
        let kid = detail(body, "kid")?;
        let role = detail(body, "role")?;
        check(!kid.is_empty(), Rule::Fields, || "an empty kid".into())?;
        check(role == "app" || role == "admin", Rule::Fields, || format!("role {role:?} is not app or admin"))?;
        check(!self.keys.contains_key(kid), Rule::KeyAddedOnce, || format!("key {kid:?} was added before"))?;
        self.keys.insert(kid.clone(), true);
        Ok(())
    }

    fn key_revoked(&mut self, body: &EventBody) -> Check {
        no_card_nor_identity(body)?;
        let kid = detail(body, "kid")?;
        match self.keys.get(kid) {
            Some(true) => {
                self.keys.insert(kid.clone(), false);
                Ok(())
            }
            Some(false) => Err((Rule::KeyRevokedLive, format!("key {kid:?} is revoked already"))),
            None => Err((Rule::KeyRevokedLive, format!("key {kid:?} was never added"))),
        }
    }

    fn card_published(&mut self, body: &EventBody) -> Check {
        let card = card_id(body.card_id.as_ref(), "card_id")?;
        let identity = identity(body)?;
        let previous = body.detail.get("previous_card_id");
        let chain = body.detail.get("chain_id");
        check(previous.is_some() == chain.is_some(), Rule::Fields, || {
            "a rotation carries previous_card_id and chain_id, a root card neither".into()
        })?;
        check(!self.cards.contains_key(card), Rule::CardPublishedOnce, || format!("card {card} was published before"))?;
        check(body.actor == format!("user:{identity}"), Rule::OwnerPublishes, || {
            format!("card {card} of {identity:?} published by {:?}", body.actor)
        })?;
        let chain_id = match (previous, chain) {
            (Some(previous), Some(chain)) => {
                let previous = card_id(Some(previous), "previous_card_id")?;
                let chain = card_id(Some(chain), "chain_id")?;
                self.rotation(card, identity, previous, chain)?;
                chain.to_owned()
            }
            _ => {
                let live = self.live.get(identity).copied().unwrap_or(0);
                check(self.policy != Some(Policy::Single) || live == 0, Rule::SinglePolicy, || {
                    format!("a root card {card} for {identity:?}, which has a live chain, under \"single\"")
                })?;
                // A root card's id names its chain; an unpublished id names no chain.
                self.chains.insert(
                    card.to_owned(),
                    Chain { identity: identity.to_owned(), head: card.to_owned(), revoked: false, awaiting: None },
                );
                *self.live.entry(identity.to_owned()).or_default() += 1;
                card.to_owned()
            }
        };
        self.cards.insert(card.to_owned(), CardState { identity: identity.to_owned(), chain: chain_id });
        Ok(())
    }

    fn rotation(&mut self, card: &str, identity: &str, previous: &str, chain_id: &str) -> Check {
        let Some(before) = self.cards.get(previous) else {
            return Err((Rule::RotationOfPublished, format!("card {card} rotates {previous}, never published")));
        };
        check(before.identity == identity, Rule::SameIdentity, || {
            format!("card {card} of {identity:?} rotates {previous} of {:?}", before.identity)
        })?;
        check(before.chain == chain_id, Rule::RotationChainId, || {
            format!("chain_id {chain_id}, but {previous} is of chain {}", before.chain)
        })?;
        let chain =
            self.chains.get_mut(chain_id).ok_or_else(|| (Rule::RotationChainId, format!("no chain {chain_id}")))?;
        check(!chain.revoked, Rule::RotationIntoLiveChain, || format!("chain {chain_id} is revoked"))?;
        check(chain.head == previous, Rule::RotationOfHead, || {
            format!("card {previous} is not its chain's head ({} is)", chain.head)
        })?;
        check(chain.awaiting.is_none(), Rule::SupersededInPlace, || {
            format!("card {card} rotates {previous} before {previous}'s own card_superseded")
        })?;
        chain.head = card.to_owned();
        chain.awaiting = Some(Awaiting { previous: previous.to_owned(), successor: card.to_owned() });
        Ok(())
    }

    fn card_superseded(&mut self, body: &EventBody) -> Check {
        let card = card_id(body.card_id.as_ref(), "card_id")?;
        let identity = identity(body)?;
        let successor = card_id(body.detail.get("superseded_by"), "superseded_by")?;
        let Some(state) = self.cards.get(card) else {
            return Err((Rule::SupersededAfterRotation, format!("card {card} was never published")));
        };
        check(state.identity == identity, Rule::SameIdentity, || {
            format!("card {card} of {:?} superseded as {identity:?}'s", state.identity)
        })?;
        check(body.actor == format!("user:{identity}"), Rule::OwnerPublishes, || {
            format!("card {card} of {identity:?} superseded by {:?}", body.actor)
        })?;
        let chain = self
            .chains
            .get_mut(&state.chain)
            .ok_or_else(|| (Rule::SupersededAfterRotation, format!("card {card} has no chain")))?;
        match &chain.awaiting {
            Some(awaiting) if awaiting.previous == card && awaiting.successor == successor => {
                chain.awaiting = None;
                Ok(())
            }
            Some(awaiting) if awaiting.previous == card => Err((
                Rule::SupersededAfterRotation,
                format!("card {card} superseded by {successor}, but {} rotated it", awaiting.successor),
            )),
            _ => Err((
                Rule::SupersededAfterRotation,
                format!("no rotation of card {card} awaits its card_superseded (none, or it came already)"),
            )),
        }
    }

    fn chain_revoked(&mut self, body: &EventBody) -> Check {
        let card = card_id(body.card_id.as_ref(), "card_id")?;
        let identity = identity(body)?;
        let chain_id = card_id(Some(detail(body, "chain_id")?), "chain_id")?;
        let Some(state) = self.cards.get(card) else {
            return Err((Rule::RevocationOfPublished, format!("card {card} was never published")));
        };
        check(state.chain == chain_id, Rule::RevocationChainId, || {
            format!("chain_id {chain_id}, but {card} is of chain {}", state.chain)
        })?;
        check(state.identity == identity, Rule::SameIdentity, || {
            format!("card {card} of {:?} revoked as {identity:?}'s", state.identity)
        })?;
        let owner = body.actor == format!("user:{identity}");
        let admin_with_reason = body.actor.strip_prefix("admin:").is_some_and(|name| !name.is_empty())
            && body.detail.get("reason").is_some_and(|reason| !reason.trim().is_empty());
        check(owner || admin_with_reason, Rule::Revoker, || {
            format!(
                "chain {chain_id} of {identity:?} revoked by {:?} (the owner, or an admin with a reason)",
                body.actor
            )
        })?;
        let chain =
            self.chains.get_mut(chain_id).ok_or_else(|| (Rule::RevocationChainId, format!("no chain {chain_id}")))?;
        check(chain.awaiting.is_none(), Rule::SupersededInPlace, || {
            format!("chain {chain_id} revoked before the card_superseded of its last rotation")
        })?;
        check(!chain.revoked, Rule::RevocationOfLiveChain, || format!("chain {chain_id} is revoked already"))?;
        chain.revoked = true;
        if let Some(live) = self.live.get_mut(&chain.identity) {
            *live = live.saturating_sub(1);
        }
        Ok(())
    }
}

/// Replays an app's entries, in order, against the directory's rules. A rotation at the very end
/// may lack its `card_superseded`: the two are sequenced in one round but can straddle two of its
/// transactions, so a checkpoint may fall between them.
pub fn replay(app: &str, entries: &[Vec<u8>]) -> Result<(), Violation> {
    let mut directory = Directory::default();
    for (index, entry) in entries.iter().enumerate() {
        let at = |(rule, why): (Rule, String)| Violation { index, rule, why };
        let body: EventBody =
            serde_json::from_slice(entry).map_err(|e| at((Rule::EventBody, format!("not an event body ({e})"))))?;
        check_entry(&mut directory, app, index, entry, &body).map_err(at)?;
    }
    Ok(())
}

/// One entry: its form, then what it does to the directory.
fn check_entry(directory: &mut Directory, app: &str, index: usize, entry: &[u8], body: &EventBody) -> Check {
    check(body.canonical_bytes() == entry, Rule::Canonical, || "it does not re-serialise to the same bytes".into())?;
    check(body.app == app, Rule::App, || format!("of app {:?}", body.app))?;
    check(body.seq == index as i64 + 1, Rule::Sequence, || format!("seq {}, expected {}", body.seq, index + 1))?;
    check((body.kind == EventKind::AppCreated) == (index == 0), Rule::AppCreatedFirst, || {
        format!("{} at entry {index}: app_created is entry 0 and only it", body.kind.as_str())
    })?;
    directory.apply(body)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const APP: &str = "chat";

    /// Every rule, in the order docs/TRANSPARENCY.md lists them.
    const ALL: [Rule; 24] = [
        Rule::EventBody,
        Rule::Canonical,
        Rule::App,
        Rule::Sequence,
        Rule::AppCreatedFirst,
        Rule::Fields,
        Rule::PolicyRecorded,
        Rule::KeyAddedOnce,
        Rule::KeyRevokedLive,
        Rule::CardPublishedOnce,
        Rule::OwnerPublishes,
        Rule::SinglePolicy,
        Rule::RotationOfPublished,
        Rule::SameIdentity,
        Rule::RotationChainId,
        Rule::RotationIntoLiveChain,
        Rule::RotationOfHead,
        Rule::SupersededAfterRotation,
        Rule::SupersededInPlace,
        Rule::RevocationOfPublished,
        Rule::RevocationChainId,
        Rule::RevocationOfLiveChain,
        Rule::Revoker,
        Rule::ErasedByAdmin,
    ];

    /// The card id `nn…nn`.
    fn id(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    /// A log built the way the server writes it.
    struct Log(Vec<EventBody>);

    impl Log {
        fn new(policy: &str) -> Log {
            let mut log = Log(Vec::new());
            log.push(EventKind::AppCreated, None, None, "bootstrap", &[("cards_per_identity", policy)]);
            log
        }

        fn push(
            &mut self,
            kind: EventKind,
            card: Option<&str>,
            identity: Option<&str>,
            actor: &str,
            detail: &[(&str, &str)],
        ) -> &mut Log {
            self.0.push(EventBody {
                app: APP.into(),
                seq: self.0.len() as i64 + 1,
                at: 1_700_000_000_000 + self.0.len() as i64,
                kind,
                card_id: card.map(str::to_owned),
                identity: identity.map(str::to_owned),
                actor: actor.into(),
                detail: detail.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
            });
            self
        }

        fn key_added(&mut self, kid: &str) -> &mut Log {
            self.push(EventKind::KeyAdded, None, None, "cli", &[("kid", kid), ("role", "app")])
        }

        fn key_revoked(&mut self, kid: &str) -> &mut Log {
            self.push(EventKind::KeyRevoked, None, None, "admin:ops", &[("kid", kid)])
        }

        fn root(&mut self, card: u8, identity: &str) -> &mut Log {
            self.push(EventKind::CardPublished, Some(&id(card)), Some(identity), &format!("user:{identity}"), &[])
        }

        /// A rotation's `card_published` alone.
        fn rotated(&mut self, card: u8, previous: u8, chain: u8, identity: &str) -> &mut Log {
            let (previous, chain) = (id(previous), id(chain));
            let detail = [("previous_card_id", previous.as_str()), ("chain_id", chain.as_str())];
            self.push(EventKind::CardPublished, Some(&id(card)), Some(identity), &format!("user:{identity}"), &detail)
        }

        fn superseded(&mut self, card: u8, by: u8, identity: &str) -> &mut Log {
            let by = id(by);
            let detail = [("superseded_by", by.as_str())];
            self.push(EventKind::CardSuperseded, Some(&id(card)), Some(identity), &format!("user:{identity}"), &detail)
        }

        /// A rotation and its supersession, as one publish writes them.
        fn rotate(&mut self, card: u8, previous: u8, chain: u8, identity: &str) -> &mut Log {
            self.rotated(card, previous, chain, identity).superseded(previous, card, identity)
        }

        fn revoke(&mut self, card: u8, chain: u8, identity: &str, actor: &str, reason: Option<&str>) -> &mut Log {
            let chain = id(chain);
            let mut detail = vec![("chain_id", chain.as_str())];
            detail.extend(reason.map(|r| ("reason", r)));
            self.push(EventKind::ChainRevoked, Some(&id(card)), Some(identity), actor, &detail)
        }

        fn erase(&mut self, identity: &str, actor: &str) -> &mut Log {
            self.push(EventKind::KeyknoxErased, None, Some(identity), actor, &[])
        }

        fn entries(&self) -> Vec<Vec<u8>> {
            self.0.iter().map(EventBody::canonical_bytes).collect()
        }

        /// The replay's failure, checked to name `rule` and the last entry.
        fn fails(&self, rule: Rule) {
            self.fails_at(self.0.len() - 1, rule);
        }

        fn fails_at(&self, index: usize, rule: Rule) {
            self.entries_fail_at(&self.entries(), index, rule);
        }

        fn entries_fail_at(&self, entries: &[Vec<u8>], index: usize, rule: Rule) {
            let violation = replay(APP, entries).expect_err("the log breaks a rule");
            assert_eq!((violation.index, violation.rule), (index, rule), "{violation}");
            let message = violation.to_string();
            assert!(message.starts_with(&format!("entry {index}: rule {}: ", rule.name())), "{message}");
        }
    }

    /// Every kind, every rule kept: what an honest directory writes.
    fn honest(policy: &str) -> Log {
        let mut log = Log::new(policy);
        log.key_added("app-key")
            .key_added("admin-key")
            .root(1, "alice")
            .root(2, "bob")
            // A rotation, an unrelated entry between it and its supersession (two publishes
            // sequenced in one round), then a second rotation of the new head.
            .rotated(3, 1, 1, "alice")
            .root(4, "carol")
            .superseded(1, 3, "alice")
            .rotate(5, 3, 1, "alice")
            // Revoked by the owner naming a superseded card of the chain, then a new root.
            .revoke(3, 1, "alice", "user:alice", None)
            .root(6, "alice")
            .revoke(2, 2, "bob", "admin:ops", Some("left the company"))
            .erase("bob", "admin:ops")
            .key_revoked("app-key")
            // A rotation at the end of the log, its supersession not yet in it.
            .rotated(7, 6, 6, "alice");
        log
    }

    #[test]
    fn an_honest_log_replays_under_either_policy() {
        for policy in ["single", "multiple"] {
            assert_eq!(replay(APP, &honest(policy).entries()), Ok(()), "{policy}");
        }
        let mut multiple = honest("multiple");
        multiple.root(8, "alice").root(9, "alice");
        assert_eq!(replay(APP, &multiple.entries()), Ok(()), "several live chains under multiple");
        assert_eq!(replay(APP, &[]), Ok(()), "an empty log");
    }

    #[test]
    fn event_body_an_entry_that_is_not_json_fails() {
        let log = honest("single");
        let mut entries = log.entries();
        entries[4] = b"{\"app\":\"chat\"}".to_vec();
        log.entries_fail_at(&entries, 4, Rule::EventBody);
    }

    #[test]
    fn canonical_an_entry_with_other_spacing_fails() {
        let log = honest("single");
        let mut entries = log.entries();
        entries[3] = serde_json::to_vec_pretty(&log.0[3]).unwrap();
        log.entries_fail_at(&entries, 3, Rule::Canonical);
    }

    #[test]
    fn app_an_entry_of_another_app_fails() {
        let mut log = honest("single");
        log.0[2].app = "other".into();
        log.fails_at(2, Rule::App);
    }

    #[test]
    fn sequence_a_dropped_entry_fails() {
        let mut log = honest("single");
        log.0.remove(2);
        log.fails_at(2, Rule::Sequence);
    }

    #[test]
    fn app_created_first_a_second_app_created_or_none_first_fails() {
        let mut log = honest("single");
        log.push(EventKind::AppCreated, None, None, "cli", &[("cards_per_identity", "single")]);
        log.fails(Rule::AppCreatedFirst);
        let mut headless = honest("single");
        headless.0.remove(0);
        for (seq, body) in headless.0.iter_mut().enumerate() {
            body.seq = seq as i64 + 1;
        }
        headless.fails_at(0, Rule::AppCreatedFirst);
    }

    #[test]
    fn fields_an_entry_missing_what_its_kind_carries_fails() {
        let broken: [fn(&mut Log); 6] = [
            |log| {
                log.push(EventKind::KeyAdded, None, None, "cli", &[("role", "app")]);
            },
            |log| {
                log.push(EventKind::KeyAdded, None, None, "cli", &[("kid", "k"), ("role", "root")]);
            },
            |log| {
                log.push(EventKind::KeyRevoked, None, Some("alice"), "cli", &[("kid", "app-key")]);
            },
            |log| {
                log.push(EventKind::CardPublished, Some("ABC"), Some("dave"), "user:dave", &[]);
            },
            |log| {
                let chain = id(1);
                log.push(
                    EventKind::CardPublished,
                    Some(&id(9)),
                    Some("dave"),
                    "user:dave",
                    &[("chain_id", chain.as_str())],
                );
            },
            |log| {
                log.push(EventKind::ChainRevoked, Some(&id(4)), Some("carol"), "user:carol", &[]);
            },
        ];
        for (case, write) in broken.iter().enumerate() {
            let mut log = honest("single");
            write(&mut log);
            let violation = replay(APP, &log.entries()).unwrap_err();
            assert_eq!(violation.rule, Rule::Fields, "case {case}: {violation}");
            assert!(violation.to_string().contains("rule fields"), "case {case}: {violation}");
        }
        let mut log = honest("single");
        log.push(EventKind::CardSuperseded, Some(&id(6)), None, "user:alice", &[]);
        log.fails(Rule::Fields);
        let mut log = honest("single");
        log.push(EventKind::KeyknoxErased, Some(&id(6)), Some("alice"), "admin:ops", &[]);
        log.fails(Rule::Fields);
    }

    #[test]
    fn policy_recorded_an_app_created_without_a_known_policy_fails() {
        Log::new("several").fails_at(0, Rule::PolicyRecorded);
        let mut log = Log::new("single");
        log.0[0].detail.clear();
        log.fails_at(0, Rule::PolicyRecorded);
    }

    #[test]
    fn key_added_once_a_key_added_twice_fails() {
        let mut log = honest("single");
        log.key_added("admin-key");
        log.fails(Rule::KeyAddedOnce);
        let mut log = honest("single");
        log.key_added("app-key");
        log.fails(Rule::KeyAddedOnce);
    }

    #[test]
    fn key_revoked_live_a_key_revoked_twice_or_never_added_fails() {
        let mut log = honest("single");
        log.key_revoked("app-key");
        log.fails(Rule::KeyRevokedLive);
        let mut log = honest("single");
        log.key_revoked("never");
        log.fails(Rule::KeyRevokedLive);
    }

    #[test]
    fn card_published_once_a_card_published_twice_fails() {
        let mut log = honest("multiple");
        log.root(4, "carol");
        log.fails(Rule::CardPublishedOnce);
    }

    #[test]
    fn owner_publishes_a_card_published_or_superseded_by_another_fails() {
        let mut log = honest("multiple");
        log.push(EventKind::CardPublished, Some(&id(9)), Some("dave"), "admin:ops", &[]);
        log.fails(Rule::OwnerPublishes);
        let mut log = honest("multiple");
        log.0.last_mut().unwrap().actor = "user:mallory".into();
        log.fails(Rule::OwnerPublishes);
        let mut log = honest("multiple");
        let by = id(7);
        log.push(
            EventKind::CardSuperseded,
            Some(&id(6)),
            Some("alice"),
            "user:mallory",
            &[("superseded_by", by.as_str())],
        );
        log.fails(Rule::OwnerPublishes);
    }

    #[test]
    fn single_policy_a_second_live_root_for_an_identity_fails() {
        let mut log = honest("single");
        log.root(9, "carol");
        log.fails(Rule::SinglePolicy);
        let mut log = Log::new("single");
        log.root(1, "alice").revoke(1, 1, "alice", "user:alice", None).root(2, "alice");
        assert_eq!(replay(APP, &log.entries()), Ok(()), "after a revocation, a new root");
    }

    #[test]
    fn rotation_of_published_a_rotation_of_an_unknown_card_fails() {
        let mut log = honest("single");
        log.rotated(9, 8, 8, "dave");
        log.fails(Rule::RotationOfPublished);
    }

    #[test]
    fn same_identity_a_chain_changing_identity_fails() {
        let mut log = honest("single");
        log.rotated(9, 4, 4, "mallory");
        log.fails(Rule::SameIdentity);
        let mut log = honest("single");
        log.superseded(6, 7, "mallory");
        log.fails(Rule::SameIdentity);
        let mut log = honest("single");
        log.revoke(4, 4, "mallory", "admin:ops", Some("x"));
        log.fails(Rule::SameIdentity);
    }

    #[test]
    fn rotation_chain_id_a_rotation_naming_another_chain_fails() {
        let mut log = honest("single");
        log.rotated(9, 4, 2, "carol");
        log.fails(Rule::RotationChainId);
    }

    #[test]
    fn rotation_into_live_chain_a_rotation_into_a_revoked_chain_fails() {
        let mut log = honest("single");
        log.rotated(9, 2, 2, "bob");
        log.fails(Rule::RotationIntoLiveChain);
    }

    #[test]
    fn rotation_of_head_a_rotation_of_a_superseded_card_fails() {
        let mut log = Log::new("single");
        log.root(1, "alice").rotate(2, 1, 1, "alice").rotated(3, 1, 1, "alice");
        log.fails(Rule::RotationOfHead);
    }

    #[test]
    fn superseded_after_rotation_a_supersession_without_its_rotation_fails() {
        let mut log = honest("single");
        log.superseded(4, 9, "carol");
        log.fails(Rule::SupersededAfterRotation);
        let mut log = honest("single");
        log.superseded(1, 3, "alice");
        log.fails(Rule::SupersededAfterRotation);
        let mut log = honest("single");
        log.superseded(6, 9, "alice");
        log.fails(Rule::SupersededAfterRotation);
        let mut log = honest("single");
        log.superseded(9, 6, "alice");
        log.fails(Rule::SupersededAfterRotation);
        // The supersession before its rotation.
        let mut log = Log::new("single");
        log.root(1, "alice").superseded(1, 2, "alice").rotated(2, 1, 1, "alice");
        log.fails_at(2, Rule::SupersededAfterRotation);
    }

    #[test]
    fn superseded_in_place_the_chain_moving_before_the_supersession_fails() {
        let mut log = honest("single");
        log.rotated(8, 7, 6, "alice");
        log.fails(Rule::SupersededInPlace);
        let mut log = honest("single");
        log.revoke(7, 6, "alice", "user:alice", None);
        log.fails(Rule::SupersededInPlace);
    }

    #[test]
    fn revocation_of_published_a_revocation_of_an_unknown_card_fails() {
        let mut log = honest("single");
        log.revoke(9, 9, "dave", "user:dave", None);
        log.fails(Rule::RevocationOfPublished);
    }

    #[test]
    fn revocation_chain_id_a_revocation_naming_another_chain_fails() {
        let mut log = honest("single");
        log.revoke(4, 6, "carol", "user:carol", None);
        log.fails(Rule::RevocationChainId);
    }

    #[test]
    fn revocation_of_live_chain_a_chain_revoked_twice_fails() {
        let mut log = honest("single");
        log.revoke(5, 1, "alice", "admin:ops", Some("again"));
        log.fails(Rule::RevocationOfLiveChain);
    }

    #[test]
    fn revoker_a_revocation_by_another_user_or_an_admin_without_reason_fails() {
        for (actor, reason) in
            [("user:mallory", None), ("admin:ops", None), ("admin:ops", Some("  ")), ("cli", Some("x"))]
        {
            let mut log = honest("single");
            log.revoke(4, 4, "carol", actor, reason);
            log.fails(Rule::Revoker);
        }
    }

    #[test]
    fn erased_by_admin_an_erasure_by_a_user_fails() {
        let mut log = honest("single");
        log.erase("alice", "user:alice");
        log.fails(Rule::ErasedByAdmin);
    }

    #[test]
    fn every_rule_has_a_test_and_a_line_in_the_docs() {
        let source = include_str!("replay.rs");
        let docs = include_str!("../../../docs/TRANSPARENCY.md");
        for rule in ALL {
            let name = rule.name();
            assert!(docs.contains(&format!("`{name}`")), "docs/TRANSPARENCY.md lists {name}");
            let test = name.replace('-', "_");
            assert!(source.contains(&format!("fn {test}_")), "a test named {test}_…");
        }
    }
}
