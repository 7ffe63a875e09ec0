//! Apps and their API keys.

use async_trait::async_trait;

use super::SqlStore;
use super::db::Row;
use crate::domain::{AppId, CardsPerIdentity, KeyRole};
use crate::storage::{ApiKeyRecord, ApiKeyStore, AppRecord, AppStore, EventDraft, GENESIS, StorageError};

fn app_from_row(row: &Row) -> Result<AppRecord, StorageError> {
    Ok(AppRecord {
        id: row.parse("id", AppId::parse)?,
        cards_per_identity: row
            .parse("cards_per_identity", |s| CardsPerIdentity::parse(s).ok_or("an unknown chain policy"))?,
        created_at: row.get("created_at")?,
    })
}

fn key_from_row(row: &Row) -> Result<ApiKeyRecord, StorageError> {
    Ok(ApiKeyRecord {
        kid: row.get("kid")?,
        app_id: row.parse("app_id", AppId::parse)?,
        role: row.parse("role", |s| KeyRole::parse(s).ok_or("an unknown key role"))?,
        public_key: row.get("public_key")?,
        created_at: row.get("created_at")?,
        revoked_at: row.get("revoked_at")?,
    })
}

#[async_trait]
impl AppStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn create_app(&self, app: &AppRecord, event: EventDraft) -> Result<(), StorageError> {
        let sql =
            "INSERT INTO apps (id, cards_per_identity, created_at, event_seq, event_head) VALUES ($1, $2, $3, 0, $4)";
        let args = [
            (&app.id).into(),
            app.cards_per_identity.as_str().into(),
            app.created_at.into(),
            GENESIS.as_slice().into(),
        ];
        self.write_one(sql, &args, &app.id, event).await
    }

    #[tracing::instrument(skip_all)]
    async fn find_app(&self, id: &AppId) -> Result<Option<AppRecord>, StorageError> {
        let sql = "SELECT id, cards_per_identity, created_at FROM apps WHERE id = $1";
        self.read_optional(sql, &[id.into()], app_from_row).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_apps(&self) -> Result<Vec<AppRecord>, StorageError> {
        self.read_all("SELECT id, cards_per_identity, created_at FROM apps ORDER BY id", &[], app_from_row).await
    }
}

#[async_trait]
impl ApiKeyStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn insert_api_key(&self, key: &ApiKeyRecord, event: EventDraft) -> Result<(), StorageError> {
        let sql = "INSERT INTO api_keys (kid, app_id, role, public_key, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)";
        let args = [
            (&key.kid).into(),
            (&key.app_id).into(),
            key.role.as_str().into(),
            key.public_key.as_slice().into(),
            key.created_at.into(),
            key.revoked_at.into(),
        ];
        self.write_one(sql, &args, &key.app_id, event).await
    }

    #[tracing::instrument(skip_all)]
    async fn find_api_key(&self, kid: &str) -> Result<Option<ApiKeyRecord>, StorageError> {
        let sql = "SELECT kid, app_id, role, public_key, created_at, revoked_at FROM api_keys WHERE kid = $1";
        self.read_optional(sql, &[kid.into()], key_from_row).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_api_keys(&self, app_id: Option<&AppId>) -> Result<Vec<ApiKeyRecord>, StorageError> {
        let sql = "SELECT kid, app_id, role, public_key, created_at, revoked_at FROM api_keys \
                   WHERE $1 IS NULL OR app_id = $1 ORDER BY app_id, created_at, kid";
        self.read_all(sql, &[app_id.into()], key_from_row).await
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_api_key(&self, kid: &str, at: i64, event: EventDraft) -> Result<bool, StorageError> {
        let mut tx = self.db.begin_write().await?;
        let mut session = tx.session();
        let app_id = session
            .fetch_optional("SELECT app_id FROM api_keys WHERE kid = $1", &[kid.into()])
            .await?
            .ok_or(StorageError::NotFound)?
            .parse("app_id", AppId::parse)?;
        let changed = session
            .execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE kid = $1 AND revoked_at IS NULL",
                &[kid.into(), at.into()],
            )
            .await?
            == 1;
        let events = if changed { std::slice::from_ref(&event) } else { &[] };
        self.finish_write(tx, &app_id, events).await?;
        Ok(changed)
    }
}
