//! Apps and their API keys: the rules for creating apps and registering and revoking keys, and
//! the events they write — what `cardinal app|key`, the first start and (later) the admin API
//! share. No files and no HTTP here.

use std::collections::BTreeMap;

use cardinal_card::log::EventKind;
use cardinal_card::{CardError, PublicKey};
use thiserror::Error;

use crate::clock::Clock;
use crate::domain::{AppId, CardsPerIdentity, InvalidAppId, KeyRole};
use crate::storage::{ApiKeyRecord, ApiKeyStore, AppRecord, AppStore, EventDraft, StorageError, Store, constraint};

/// Why an app or key change was refused.
#[derive(Debug, Error)]
pub enum AppsError {
    /// The app id does not have the allowed form.
    #[error(transparent)]
    InvalidAppId(#[from] InvalidAppId),
    /// The app exists already.
    #[error("app {0} exists")]
    AppExists(AppId),
    /// There is no such app.
    #[error("there is no app {0:?}; create it with `cardinal app create {0}`")]
    UnknownApp(String),
    /// The key id does not have the allowed form.
    #[error("key ids are 1 to 128 printable ASCII characters without spaces")]
    InvalidKid,
    /// A key with this id exists.
    #[error("a key {0:?} exists")]
    KeyExists(String),
    /// The public key is one no honest generator produces.
    #[error("refusing this public key: {0}")]
    WeakKey(CardError),
    /// There is no such key.
    #[error("there is no key {0:?}")]
    UnknownKey(String),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The longest key id.
const MAX_KID_LEN: usize = 128;

/// Manages apps and keys over a store, telling time by a clock.
pub struct AppAdmin<'a> {
    apps: &'a dyn AppStore,
    keys: &'a dyn ApiKeyStore,
    clock: &'a dyn Clock,
}

/// A fresh key id: 128 random bits in hex, like Virgil's API key ids.
pub fn new_kid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl<'a> AppAdmin<'a> {
    /// Over `store`'s apps and keys.
    pub fn new(store: &'a dyn Store, clock: &'a dyn Clock) -> Self {
        AppAdmin { apps: store, keys: store, clock }
    }

    fn event(&self, kind: EventKind, actor: &str, detail: BTreeMap<String, String>) -> EventDraft {
        EventDraft {
            kind,
            at_ms: self.clock.now().timestamp_millis(),
            card_id: None,
            identity: None,
            actor: actor.to_owned(),
            detail,
        }
    }

    /// Creates an app, with its `app_created` event.
    pub async fn create_app(&self, id: &str, policy: CardsPerIdentity, actor: &str) -> Result<AppRecord, AppsError> {
        let id = AppId::parse(id)?;
        let app = AppRecord { id: id.clone(), cards_per_identity: policy, created_at: self.clock.unix() };
        let detail = BTreeMap::from([("cards_per_identity".to_owned(), policy.as_str().to_owned())]);
        match self.apps.create_app(&app, self.event(EventKind::AppCreated, actor, detail)).await {
            Err(StorageError::Conflict { constraint: constraint::APPS_PKEY }) => Err(AppsError::AppExists(id)),
            other => Ok(other.map(|()| app)?),
        }
    }

    /// Registers a public key for an app. A small-order key would let anyone forge its tokens
    /// under a lax verifier, and a non-canonical one is a second spelling of some key: neither
    /// is what an honest generator produces, so both are refused.
    pub async fn add_key(
        &self,
        app_id: &str,
        role: KeyRole,
        public_key: &PublicKey,
        kid: Option<String>,
        actor: &str,
    ) -> Result<ApiKeyRecord, AppsError> {
        let app = match AppId::parse(app_id) {
            Ok(id) => self.apps.find_app(&id).await?,
            Err(_) => None,
        };
        let app = app.ok_or_else(|| AppsError::UnknownApp(app_id.to_owned()))?;
        public_key.check_strong().map_err(AppsError::WeakKey)?;
        let kid = kid.unwrap_or_else(new_kid);
        if kid.is_empty() || kid.len() > MAX_KID_LEN || !kid.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AppsError::InvalidKid);
        }
        let key = ApiKeyRecord {
            kid: kid.clone(),
            app_id: app.id,
            role,
            public_key: public_key.raw_bytes().to_vec(),
            created_at: self.clock.unix(),
            revoked_at: None,
        };
        let detail = BTreeMap::from([("kid".to_owned(), kid.clone()), ("role".to_owned(), role.as_str().to_owned())]);
        match self.keys.insert_api_key(&key, self.event(EventKind::KeyAdded, actor, detail)).await {
            Err(StorageError::Conflict { constraint: constraint::API_KEYS_PKEY }) => Err(AppsError::KeyExists(kid)),
            other => Ok(other.map(|()| key)?),
        }
    }

    /// Revokes a key: tokens it signed stop working within the credential window. `Ok(false)`
    /// if it already was.
    pub async fn revoke_key(&self, kid: &str, actor: &str) -> Result<bool, AppsError> {
        let detail = BTreeMap::from([("kid".to_owned(), kid.to_owned())]);
        let event = self.event(EventKind::KeyRevoked, actor, detail);
        match self.keys.revoke_api_key(kid, self.clock.unix(), event).await {
            Err(StorageError::NotFound) => Err(AppsError::UnknownKey(kid.to_owned())),
            other => Ok(other?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::storage::memory::MemoryStore;

    #[tokio::test]
    async fn apps_and_keys_follow_their_rules() {
        let store = MemoryStore::new();
        let clock = ManualClock::starting_now();
        let admin = AppAdmin::new(&store, clock.as_ref());
        let app = admin.create_app("chat", CardsPerIdentity::Single, "cli").await.unwrap();
        assert_eq!(app.created_at, clock.unix());
        assert!(matches!(
            admin.create_app("chat", CardsPerIdentity::Multiple, "cli").await,
            Err(AppsError::AppExists(_))
        ));
        assert!(matches!(
            admin.create_app("no spaces", CardsPerIdentity::Single, "cli").await,
            Err(AppsError::InvalidAppId(_))
        ));

        let key = cardinal_card::SigningKey::generate().public_key();
        assert!(matches!(admin.add_key("nope", KeyRole::App, &key, None, "cli").await, Err(AppsError::UnknownApp(_))));
        assert!(matches!(
            admin.add_key("chat", KeyRole::App, &key, Some("has space".into()), "cli").await,
            Err(AppsError::InvalidKid)
        ));
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = PublicKey::from_bytes(&identity).unwrap();
        assert!(matches!(admin.add_key("chat", KeyRole::Admin, &weak, None, "cli").await, Err(AppsError::WeakKey(_))));
        let record = admin.add_key("chat", KeyRole::App, &key, Some("k1".into()), "cli").await.unwrap();
        assert!(matches!(
            admin.add_key("chat", KeyRole::App, &key, Some("k1".into()), "cli").await,
            Err(AppsError::KeyExists(_))
        ));
        assert!(admin.revoke_key(&record.kid, "cli").await.unwrap());
        assert!(!admin.revoke_key(&record.kid, "cli").await.unwrap(), "already revoked");
        assert!(matches!(admin.revoke_key("zz", "cli").await, Err(AppsError::UnknownKey(_))));
    }
}
