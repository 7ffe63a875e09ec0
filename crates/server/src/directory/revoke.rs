//! Revoking a chain: by its owner, or by an admin with a reason.

use std::collections::BTreeMap;

use cardinal_card::log::EventKind;

use super::{Card, Directory, DirectoryError};
use crate::domain::{Caller, KeyRole};
use crate::storage::{EventDraft, Revocation};

/// Who revokes, and therefore which rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoker {
    /// The card's owner, with a user token; the reason is optional.
    Owner,
    /// An admin of the app, with an admin token; the reason is required.
    Admin,
}

impl Revoker {
    /// The label metrics count revocations under.
    pub fn as_str(self) -> &'static str {
        match self {
            Revoker::Owner => "owner",
            Revoker::Admin => "admin",
        }
    }
}

impl Directory {
    /// Revokes the chain of a card. An owner revokes only their own cards; an admin any card of
    /// the app, with a reason the log keeps. Repeating a revocation changes nothing.
    #[tracing::instrument(skip_all, fields(app = ?caller.app_id.as_str(), card.id))]
    pub async fn revoke(
        &self,
        caller: &Caller,
        by: Revoker,
        id: &str,
        reason: Option<String>,
    ) -> Result<Card, DirectoryError> {
        let reason = match (by, caller.role) {
            (Revoker::Owner, KeyRole::App) => self.check_reason(reason, false)?,
            (Revoker::Admin, KeyRole::Admin) => self.check_reason(reason, true)?,
            (Revoker::Owner, KeyRole::Admin) => {
                return Err(DirectoryError::Forbidden("owners revoke with a user token; admins use the admin route"));
            }
            (Revoker::Admin, KeyRole::App) => return Err(DirectoryError::Forbidden("this route needs an admin token")),
        };
        let card = self.get(caller, id).await?;
        if by == Revoker::Owner && card.record.identity != caller.subject {
            return Err(DirectoryError::Forbidden("only the card's owner may revoke it"));
        }
        let at = self.clock.now();
        let revocation = Revocation {
            app_id: caller.app_id.clone(),
            chain_id: card.record.chain_id.clone(),
            identity: card.record.identity.clone(),
            at: at.timestamp(),
            reason: reason.clone(),
            by: caller.actor(),
        };
        let mut detail = BTreeMap::from([("chain_id".to_owned(), card.record.chain_id.to_string())]);
        if let Some(reason) = reason {
            detail.insert("reason".to_owned(), reason);
        }
        let event = EventDraft {
            kind: EventKind::ChainRevoked,
            at_ms: at.timestamp_millis(),
            card_id: Some(card.record.id.clone()),
            identity: Some(card.record.identity.clone()),
            actor: caller.actor(),
            detail,
        };
        let record = &card.record;
        let changed = self.cards.revoke_chain(&revocation, event).await;
        self.changed(&caller.app_id, &record.identity);
        if changed? {
            tracing::info!(card.id = %record.id, identity = ?record.identity.as_str(), actor = ?caller.actor(), "chain revoked");
        }
        self.get(caller, record.id.as_str()).await
    }

    fn check_reason(&self, reason: Option<String>, required: bool) -> Result<Option<String>, DirectoryError> {
        match reason {
            Some(r) if r.len() > self.rules.reason_max_bytes => Err(DirectoryError::InvalidReason(format!(
                "reason is longer than {} bytes",
                self.rules.reason_max_bytes
            ))),
            Some(r) if r.trim().is_empty() && required => {
                Err(DirectoryError::InvalidReason("an admin revocation needs a reason".into()))
            }
            None if required => Err(DirectoryError::InvalidReason("an admin revocation needs a reason".into())),
            other => Ok(other),
        }
    }
}
