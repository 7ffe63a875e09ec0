//! Publishing: a root card or a rotation, countersigned, with the events it writes.

use std::collections::BTreeMap;

use cardinal_card::card::{check_card_size, countersign};
use cardinal_card::log::EventKind;
use cardinal_card::{CardId, ParsedCard, RawSignedModel};

use super::{Card, Directory, DirectoryError};
use crate::domain::{Caller, CardsPerIdentity, KeyRole};
use crate::storage::{CardRecord, EventDraft, NewCard, Placement, StorageError, constraint};

impl Directory {
    /// Publishes a root card or, with `previous_card_id`, a rotation.
    // User-controlled fields are recorded with `?` (quoted and escaped): an identity such as
    // "m app=other identity=alice" must not read as other fields in the pretty log format.
    #[tracing::instrument(skip_all, fields(app = ?caller.app_id.as_str(), identity = ?caller.subject.as_str(), card.id))]
    pub async fn publish(&self, caller: &Caller, raw: RawSignedModel) -> Result<Card, DirectoryError> {
        if caller.role != KeyRole::App {
            return Err(DirectoryError::Forbidden("cards are published with a user token"));
        }
        let parsed = ParsedCard::parse(raw, &self.rules.format)?;
        tracing::Span::current().record("card.id", parsed.id.as_str());
        let identity = &parsed.content.identity;
        if *identity != caller.subject {
            return Err(DirectoryError::IdentityMismatch {
                card: identity.to_string(),
                token: caller.subject.to_string(),
            });
        }
        let (placement, chain_index) = match &parsed.content.previous_card_id {
            Some(previous) => self.successor_placement(caller, previous).await?,
            None => {
                let exclusive = self.policy(&caller.app_id).await? == CardsPerIdentity::Single;
                (Placement::Root { exclusive, max_live_chains: self.rules.live_chains_per_identity }, 0)
            }
        };

        let at = self.clock.now();
        let mut signed = parsed.raw.clone();
        countersign(&mut signed, &parsed.snapshot, &self.service_key);
        let raw = serde_json::to_string(&signed).map_err(|e| StorageError::Other(format!("a card's JSON: {e}")))?;
        check_card_size(&raw, &self.rules.format)?;
        let new_card = NewCard {
            app_id: caller.app_id.clone(),
            id: parsed.id.clone(),
            identity: identity.clone(),
            chain_index,
            created_at: parsed.content.created_at,
            published_at: at.timestamp(),
            public_key: parsed.content.public_key_base64.clone(),
            raw,
        };
        let events = publish_events(caller, &new_card, &placement, at.timestamp_millis());
        let stored = self.cards.insert_card(&new_card, &placement, &events).await;
        self.changed(&caller.app_id, identity);
        match stored {
            Ok(()) => {}
            Err(StorageError::Conflict { constraint }) => {
                return Err(self.explain_publish_conflict(caller, &new_card.id, constraint, &placement).await);
            }
            Err(other) => return Err(other.into()),
        }
        let rotation = matches!(placement, Placement::Successor { .. });
        tracing::info!(card.id = %new_card.id, identity = ?identity.as_str(), rotation, "card published");
        Ok(Card {
            record: CardRecord {
                chain_id: placement.chain_id(&new_card.id).clone(),
                previous_card_id: placement.previous().cloned(),
                id: new_card.id,
                identity: new_card.identity,
                superseded_by: None,
                chain_index: new_card.chain_index,
                created_at: new_card.created_at,
                published_at: new_card.published_at,
                public_key: new_card.public_key,
                raw: new_card.raw,
                revoked_at: None,
                revocation_reason: None,
                revoked_by: None,
            },
        })
    }

    /// Where a rotation of `previous` goes, and its place in the chain.
    async fn successor_placement(
        &self,
        caller: &Caller,
        previous: &CardId,
    ) -> Result<(Placement, i64), DirectoryError> {
        let previous =
            self.cards.find_card(&caller.app_id, previous).await?.ok_or(DirectoryError::PreviousCardNotFound)?;
        if previous.identity != caller.subject {
            return Err(DirectoryError::PreviousCardMismatch);
        }
        if previous.revoked_at.is_some() {
            return Err(DirectoryError::ChainRevoked);
        }
        if previous.superseded_by.is_some() {
            return Err(DirectoryError::AlreadySuperseded);
        }
        let chain_index = previous.chain_index + 1;
        Ok((Placement::Successor { chain_id: previous.chain_id, previous_card_id: previous.id }, chain_index))
    }

    /// A concurrent request won a race the checks above could not see: say which one.
    async fn explain_publish_conflict(
        &self,
        caller: &Caller,
        card_id: &CardId,
        name: &str,
        placement: &Placement,
    ) -> DirectoryError {
        let app_id = &caller.app_id;
        match (name, placement) {
            (constraint::CARDS_PKEY | constraint::CHAINS_PKEY, _) => DirectoryError::CardExists,
            (constraint::CHAINS_PER_IDENTITY, _) => {
                DirectoryError::TooManyChains { max: self.rules.live_chains_per_identity }
            }
            // Which unique index fires first is the database's choice: a republished card is
            // "exists", whichever constraint noticed it.
            (constraint::CHAINS_SINGLE_ACTIVE, _) => match self.cards.find_card(app_id, card_id).await {
                Ok(Some(_)) => DirectoryError::CardExists,
                Ok(None) => DirectoryError::IdentityTaken,
                Err(e) => e.into(),
            },
            (
                constraint::CHAIN_HEAD_MOVED | constraint::CARDS_ONE_SUCCESSOR,
                Placement::Successor { previous_card_id, .. },
            ) => match self.cards.find_card(app_id, previous_card_id).await {
                Ok(Some(previous)) if previous.revoked_at.is_some() => DirectoryError::ChainRevoked,
                Ok(_) => DirectoryError::AlreadySuperseded,
                Err(e) => e.into(),
            },
            (other, _) => StorageError::Other(format!("unexpected conflict on {other}")).into(),
        }
    }
}

fn publish_events(caller: &Caller, card: &NewCard, placement: &Placement, at_ms: i64) -> Vec<EventDraft> {
    let event = |kind, card_id: &CardId, detail: BTreeMap<String, String>| EventDraft {
        kind,
        at_ms,
        card_id: Some(card_id.clone()),
        identity: Some(card.identity.clone()),
        actor: caller.actor(),
        detail,
    };
    match placement {
        Placement::Root { .. } => vec![event(EventKind::CardPublished, &card.id, BTreeMap::new())],
        Placement::Successor { chain_id, previous_card_id } => vec![
            event(
                EventKind::CardPublished,
                &card.id,
                BTreeMap::from([
                    ("previous_card_id".to_owned(), previous_card_id.to_string()),
                    ("chain_id".to_owned(), chain_id.to_string()),
                ]),
            ),
            event(
                EventKind::CardSuperseded,
                previous_card_id,
                BTreeMap::from([("superseded_by".to_owned(), card.id.to_string())]),
            ),
        ],
    }
}
