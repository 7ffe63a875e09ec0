//! An admin erases an identity's Keyknox data (a departed user): its v1 entry, the v2 entries
//! it owns and its grants on others' entries, recorded in the app's event log.

use std::collections::BTreeMap;

use cardinal_card::log::EventKind;

use super::{Keyknox, KeyknoxError};
use crate::domain::{Caller, KeyRole};
use crate::storage::EventDraft;
use crate::storage::keyknox::Erased;

impl Keyknox {
    /// Erases everything Keyknox holds of `identity` in the admin's app.
    #[tracing::instrument(skip_all)]
    pub async fn erase(&self, caller: &Caller, identity: &str) -> Result<Erased, KeyknoxError> {
        if caller.role != KeyRole::Admin {
            return Err(KeyknoxError::Forbidden("this route needs an admin token"));
        }
        let identity = self.identity(identity)?;
        let event = EventDraft {
            kind: EventKind::KeyknoxErased,
            at_ms: self.clock.now().timestamp_millis(),
            card_id: None,
            identity: Some(identity.clone()),
            actor: caller.actor(),
            detail: BTreeMap::new(),
        };
        let erased = self.store.erase_keyknox(&caller.app_id, &identity, event).await?;
        tracing::info!(identity = ?identity.as_str(), actor = ?caller.actor(), entries = erased.entries,
            grants = erased.grants, v1 = erased.v1, "keyknox erased");
        Ok(erased)
    }
}
