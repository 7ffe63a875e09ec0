//! Keyknox in memory: the SQL store's contract, decided by the same functions
//! (`check_previous`, `order_readers`), each write under the store's one lock.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use super::MemoryStore;
use crate::domain::{AppId, Identity};
use crate::storage::keyknox::{
    EntryFilter, EntryKey, Erased, KeyknoxEntry, KeyknoxStore, KeyknoxV1Record, Push, V1Write, check_previous,
    content_hash, order_readers,
};
use crate::storage::{EventDraft, StorageError, constraint};

/// What the memory store holds of Keyknox.
#[derive(Debug, Default)]
pub(super) struct Keyknox {
    v1: HashMap<(AppId, Identity), KeyknoxV1Record>,
    entries: BTreeMap<EntryKey, KeyknoxEntry>,
}

fn matches(filter: &EntryFilter<'_>, key: &EntryKey) -> bool {
    &key.app_id == filter.app_id
        && &key.owner == filter.owner
        && filter.root.is_none_or(|root| root == key.root)
        && filter.path.is_none_or(|path| path == key.path)
        && filter.key.is_none_or(|name| name == key.key)
}

#[async_trait]
impl KeyknoxStore for MemoryStore {
    async fn keyknox_v1(&self, app_id: &AppId, identity: &Identity) -> Result<Option<KeyknoxV1Record>, StorageError> {
        Ok(self.state().keyknox.v1.get(&(app_id.clone(), identity.clone())).cloned())
    }

    async fn put_keyknox_v1(&self, write: &V1Write<'_>) -> Result<KeyknoxV1Record, StorageError> {
        let mut state = self.state();
        state.app(write.app_id)?;
        let slot = (write.app_id.clone(), write.identity.clone());
        let current = state.keyknox.v1.get(&slot);
        let empty = current.is_none_or(|stored| stored.meta.is_empty() && stored.value.is_empty());
        check_previous(
            write.previous_hash,
            current.map(|stored| stored.hash.as_str()),
            empty,
            constraint::KEYKNOX_HASH_MISMATCH,
        )?;
        let stored = KeyknoxV1Record {
            meta: write.meta.to_owned(),
            value: write.value.to_owned(),
            version: current.map_or(1, |stored| stored.version + 1),
            hash: content_hash(write.meta, write.value),
        };
        state.keyknox.v1.insert(slot, stored.clone());
        Ok(stored)
    }

    async fn reset_keyknox_v1(
        &self,
        app_id: &AppId,
        identity: &Identity,
        _at: i64,
    ) -> Result<Option<KeyknoxV1Record>, StorageError> {
        let mut state = self.state();
        let Some(stored) = state.keyknox.v1.get_mut(&(app_id.clone(), identity.clone())) else { return Ok(None) };
        stored.meta.clear();
        stored.value.clear();
        stored.version += 1;
        stored.hash = content_hash("", "");
        Ok(Some(stored.clone()))
    }

    async fn push_keyknox(&self, push: &Push<'_>) -> Result<KeyknoxEntry, StorageError> {
        let mut state = self.state();
        let key = push.key;
        state.app(&key.app_id)?;
        let current = state.keyknox.entries.get(key);
        check_previous(
            push.previous_hash,
            current.map(|entry| entry.hash.as_str()),
            current.is_none(),
            constraint::KEYKNOX_ENTRY_EXISTS,
        )?;
        let readers = order_readers(
            &key.owner,
            current.iter().flat_map(|entry| entry.readers.iter().cloned()).chain(push.readers.iter().cloned()),
        );
        if readers.len() > push.max_readers {
            return Err(StorageError::conflict(constraint::KEYKNOX_READERS_PER_ENTRY));
        }
        if current.is_none() {
            let owned = state.keyknox.entries.keys().filter(|k| k.app_id == key.app_id && k.owner == key.owner).count();
            if owned as i64 + 1 > push.max_entries {
                return Err(StorageError::conflict(constraint::KEYKNOX_ENTRIES_PER_IDENTITY));
            }
        }
        let entry = KeyknoxEntry {
            key: key.clone(),
            readers,
            meta: push.meta.to_owned(),
            value: push.value.to_owned(),
            hash: content_hash(push.meta, push.value),
        };
        state.keyknox.entries.insert(key.clone(), entry.clone());
        Ok(entry)
    }

    async fn keyknox_entry(&self, key: &EntryKey) -> Result<Option<KeyknoxEntry>, StorageError> {
        Ok(self.state().keyknox.entries.get(key).cloned())
    }

    async fn keyknox_keys(&self, filter: &EntryFilter<'_>, reader: &Identity) -> Result<Vec<String>, StorageError> {
        let state = self.state();
        let mut keys: Vec<String> = state
            .keyknox
            .entries
            .values()
            .filter(|entry| matches(filter, &entry.key) && entry.readers.contains(reader))
            .map(|entry| entry.key.key.clone())
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn delete_keyknox(&self, filter: &EntryFilter<'_>) -> Result<u64, StorageError> {
        let mut state = self.state();
        let before = state.keyknox.entries.len();
        state.keyknox.entries.retain(|key, _| !matches(filter, key));
        Ok((before - state.keyknox.entries.len()) as u64)
    }

    async fn remove_keyknox_reader(&self, filter: &EntryFilter<'_>, reader: &Identity) -> Result<u64, StorageError> {
        if reader == filter.owner {
            return Ok(0);
        }
        let mut state = self.state();
        let mut removed = 0;
        for entry in state.keyknox.entries.values_mut().filter(|entry| matches(filter, &entry.key)) {
            let before = entry.readers.len();
            entry.readers.retain(|known| known != reader);
            removed += (before - entry.readers.len()) as u64;
        }
        Ok(removed)
    }

    async fn erase_keyknox(
        &self,
        app_id: &AppId,
        identity: &Identity,
        event: EventDraft,
    ) -> Result<Erased, StorageError> {
        let mut state = self.state();
        state.app(app_id)?;
        let v1 = state.keyknox.v1.remove(&(app_id.clone(), identity.clone())).is_some();
        let before = state.keyknox.entries.len();
        state.keyknox.entries.retain(|key, _| !(&key.app_id == app_id && &key.owner == identity));
        let entries = (before - state.keyknox.entries.len()) as u64;
        let mut grants = 0;
        for entry in state.keyknox.entries.values_mut().filter(|entry| &entry.key.app_id == app_id) {
            let before = entry.readers.len();
            entry.readers.retain(|known| known != identity);
            grants += (before - entry.readers.len()) as u64;
        }
        let erased = Erased { v1, entries, grants };
        state.log(app_id, &[erased.recorded_in(event)])?;
        Ok(erased)
    }
}
