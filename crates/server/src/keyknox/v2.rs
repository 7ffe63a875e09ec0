//! Keyknox v2: entries keyed by owner, root, path and key, each with its readers. Only the owner
//! (the caller) writes and resets; the owner and the readers read; `keys` lists what the caller
//! may read.

use serde::Deserialize;

use super::{Keyknox, KeyknoxError};
use crate::domain::{Caller, Identity};
use crate::storage::StorageError;
use crate::storage::constraint;
use crate::storage::keyknox::{EMPTY_HASH, EntryFilter, EntryKey, KeyknoxEntry, Push, order_readers};

/// `POST /keyknox/v2/push`'s body.
#[derive(Debug, Clone, Deserialize)]
pub struct PushRequest {
    /// The namespace.
    pub root: String,
    /// Within the root.
    pub path: String,
    /// Within the path.
    pub key: String,
    /// Readers to add (a union with those the entry has; the owner is always one).
    #[serde(default)]
    pub identities: Vec<String>,
    /// Opaque base64.
    pub meta: String,
    /// Opaque base64.
    pub value: String,
}

/// `POST /keyknox/v2/pull`'s body.
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    /// The namespace.
    pub root: String,
    /// Within the root.
    pub path: String,
    /// Within the path.
    pub key: String,
    /// The owner; the caller when absent.
    #[serde(default)]
    pub identity: Option<String>,
}

/// `POST /keyknox/v2/keys`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KeysRequest {
    /// Exact root, or any.
    #[serde(default)]
    pub root: Option<String>,
    /// Exact path, or any.
    #[serde(default)]
    pub path: Option<String>,
    /// The owner; the caller when absent.
    #[serde(default)]
    pub identity: Option<String>,
}

/// `POST /keyknox/v2/reset`'s body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResetRequest {
    /// Exact root, or any.
    #[serde(default)]
    pub root: Option<String>,
    /// Exact path, or any.
    #[serde(default)]
    pub path: Option<String>,
    /// Exact key, or any.
    #[serde(default)]
    pub key: Option<String>,
    /// Another identity: removed from the readers instead of deleting the entries.
    #[serde(default)]
    pub identity: Option<String>,
}

impl Keyknox {
    fn entry_key(
        &self,
        caller: &Caller,
        owner: Identity,
        root: &str,
        path: &str,
        key: &str,
    ) -> Result<EntryKey, KeyknoxError> {
        Ok(EntryKey {
            app_id: caller.app_id.clone(),
            owner,
            root: self.check_name("root", root)?.to_owned(),
            path: self.check_name("path", path)?.to_owned(),
            key: self.check_name("key", key)?.to_owned(),
        })
    }

    fn owner_or_caller(&self, caller: &Identity, identity: Option<&str>) -> Result<Identity, KeyknoxError> {
        identity.map_or_else(|| Ok(caller.clone()), |identity| self.identity(identity))
    }

    /// Creates or updates the caller's entry, the readers merged (a push with no previous hash
    /// over an existing entry is refused: e3kit reads that as "group exists").
    #[tracing::instrument(skip_all)]
    pub async fn push(
        &self,
        caller: &Caller,
        request: &PushRequest,
        previous_hash: Option<&str>,
    ) -> Result<KeyknoxEntry, KeyknoxError> {
        let owner = Self::user(caller)?.clone();
        let key = self.entry_key(caller, owner, &request.root, &request.path, &request.key)?;
        self.check_content(&request.meta, &request.value)?;
        // Deduplicated and checked here so an oversized list is refused before any database work;
        // the store checks again with the readers the entry already has.
        let readers = order_readers(
            &key.owner,
            request.identities.iter().map(|identity| self.identity(identity)).collect::<Result<Vec<_>, _>>()?,
        );
        let max_readers = self.limits.readers_per_entry;
        if readers.len() > max_readers {
            return Err(KeyknoxError::TooManyReaders { max: max_readers });
        }
        let push = Push {
            key: &key,
            readers: &readers,
            meta: &request.meta,
            value: &request.value,
            previous_hash,
            max_readers,
            max_entries: self.limits.entries_per_identity,
            at: self.clock.now().timestamp(),
        };
        self.store.push_keyknox(&push).await.map_err(|error| match error {
            StorageError::Conflict { constraint: constraint::KEYKNOX_READERS_PER_ENTRY } => {
                KeyknoxError::TooManyReaders { max: max_readers }
            }
            StorageError::Conflict { constraint: constraint::KEYKNOX_ENTRIES_PER_IDENTITY } => {
                KeyknoxError::TooManyEntries { max: self.limits.entries_per_identity }
            }
            other => other.into(),
        })
    }

    /// An entry the caller owns or reads. A missing one is the empty entry (a first named
    /// backup pulls before it pushes); one the caller may not read is refused.
    #[tracing::instrument(skip_all)]
    pub async fn pull(&self, caller: &Caller, request: &PullRequest) -> Result<KeyknoxEntry, KeyknoxError> {
        let me = Self::user(caller)?;
        let owner = self.owner_or_caller(me, request.identity.as_deref())?;
        let key = self.entry_key(caller, owner, &request.root, &request.path, &request.key)?;
        match self.store.keyknox_entry(&key).await? {
            Some(entry) if entry.readers.contains(me) => Ok(entry),
            Some(_) => Err(KeyknoxError::Forbidden("the entry's owner has not listed you as a reader")),
            None => Ok(empty_entry(key)),
        }
    }

    /// The keys of the owner's entries under root and path that the caller may read.
    #[tracing::instrument(skip_all)]
    pub async fn keys(&self, caller: &Caller, request: &KeysRequest) -> Result<Vec<String>, KeyknoxError> {
        let me = Self::user(caller)?;
        let owner = self.owner_or_caller(me, request.identity.as_deref())?;
        let filter = EntryFilter {
            app_id: &caller.app_id,
            owner: &owner,
            root: self.check_filter("root", request.root.as_deref())?,
            path: self.check_filter("path", request.path.as_deref())?,
            key: None,
        };
        Ok(self.store.keyknox_keys(&filter, me).await?)
    }

    /// Acts on the caller's entries matching the filters: removes `identity` from their readers
    /// when it names someone else, else deletes them. Answers an entry-shaped object (the
    /// standalone SDK parses it as one): the entry itself when one entry was named and remains.
    #[tracing::instrument(skip_all)]
    pub async fn reset(&self, caller: &Caller, request: &ResetRequest) -> Result<KeyknoxEntry, KeyknoxError> {
        let me = Self::user(caller)?;
        let reader = request.identity.as_deref().map(|identity| self.identity(identity)).transpose()?;
        let filter = EntryFilter {
            app_id: &caller.app_id,
            owner: me,
            root: self.check_filter("root", request.root.as_deref())?,
            path: self.check_filter("path", request.path.as_deref())?,
            key: self.check_filter("key", request.key.as_deref())?,
        };
        let answer = EntryKey {
            app_id: caller.app_id.clone(),
            owner: me.clone(),
            root: filter.root.unwrap_or_default().to_owned(),
            path: filter.path.unwrap_or_default().to_owned(),
            key: filter.key.unwrap_or_default().to_owned(),
        };
        match reader.filter(|reader| reader != me) {
            Some(reader) => {
                let removed = self.store.remove_keyknox_reader(&filter, &reader).await?;
                tracing::debug!(removed, "keyknox reader removed");
                let one_entry = filter.root.is_some() && filter.path.is_some() && filter.key.is_some();
                if one_entry && let Some(entry) = self.store.keyknox_entry(&answer).await? {
                    return Ok(entry);
                }
            }
            None => {
                let deleted = self.store.delete_keyknox(&filter).await?;
                tracing::debug!(deleted, "keyknox entries deleted");
            }
        }
        Ok(empty_entry(answer))
    }
}

/// What is answered for an entry that does not exist (or no longer does).
fn empty_entry(key: EntryKey) -> KeyknoxEntry {
    KeyknoxEntry { key, readers: Vec::new(), meta: String::new(), value: String::new(), hash: EMPTY_HASH.to_owned() }
}
