//! Keyknox v1: one entry per app and identity (e3kit's unnamed private-key backup), versioned
//! "1.0", "2.0", … per write, guarded by the hash of what the client last read.

use super::{Keyknox, KeyknoxError};
use crate::domain::Caller;
use crate::storage::keyknox::{EMPTY_HASH, KeyknoxV1Record, V1Write};

/// A v1 entry as the clients read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Entry {
    /// Empty when nothing is stored.
    pub meta: String,
    /// Empty when nothing is stored.
    pub value: String,
    /// `"N.0"`: `"1.0"` before and at the first write.
    pub version: String,
    /// What the next write sends as its previous hash.
    pub hash: String,
}

impl V1Entry {
    fn nothing() -> Self {
        V1Entry { meta: String::new(), value: String::new(), version: "1.0".into(), hash: EMPTY_HASH.into() }
    }
}

impl From<KeyknoxV1Record> for V1Entry {
    fn from(record: KeyknoxV1Record) -> Self {
        V1Entry { meta: record.meta, value: record.value, version: format!("{}.0", record.version), hash: record.hash }
    }
}

impl Keyknox {
    /// The caller's v1 entry, or the empty one.
    #[tracing::instrument(skip_all)]
    pub async fn v1_get(&self, caller: &Caller) -> Result<V1Entry, KeyknoxError> {
        let identity = Self::user(caller)?;
        Ok(self.store.keyknox_v1(&caller.app_id, identity).await?.map_or_else(V1Entry::nothing, V1Entry::from))
    }

    /// Replaces the caller's v1 entry if `previous_hash` is what is stored (or, when nothing or
    /// an emptied entry is stored, absent or the empty entry's hash).
    #[tracing::instrument(skip_all)]
    pub async fn v1_put(
        &self,
        caller: &Caller,
        meta: &str,
        value: &str,
        previous_hash: Option<&str>,
    ) -> Result<V1Entry, KeyknoxError> {
        let identity = Self::user(caller)?;
        self.check_content(meta, value)?;
        let write =
            V1Write { app_id: &caller.app_id, identity, meta, value, previous_hash, at: self.clock.now().timestamp() };
        Ok(self.store.put_keyknox_v1(&write).await?.into())
    }

    /// Empties the caller's v1 entry, bumping its version; nothing stored stays nothing.
    #[tracing::instrument(skip_all)]
    pub async fn v1_reset(&self, caller: &Caller) -> Result<V1Entry, KeyknoxError> {
        let identity = Self::user(caller)?;
        let at = self.clock.now().timestamp();
        Ok(self
            .store
            .reset_keyknox_v1(&caller.app_id, identity, at)
            .await?
            .map_or_else(V1Entry::nothing, V1Entry::from))
    }
}
