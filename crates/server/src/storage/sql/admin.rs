//! The admin read API's queries.

use async_trait::async_trait;

use super::SqlStore;
use super::cards::card_from_row;
use crate::domain::{AppId, Identity};
use crate::storage::admin::{AdminStore, AppCounts, HistoryCard, HistoryCursor, IdentitiesQuery, IdentitySummary};
use crate::storage::{EventRow, StorageError};

#[async_trait]
impl AdminStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn list_identities(&self, query: IdentitiesQuery<'_>) -> Result<Vec<IdentitySummary>, StorageError> {
        // identity_versions has a row for every identity that ever published; the counts come
        // from the cards by identity index.
        let sql = "SELECT v.identity, v.version, \
                   (SELECT COUNT(*) FROM cards c WHERE c.app_id = v.app_id AND c.identity = v.identity) AS cards, \
                   (SELECT COUNT(*) FROM cards c JOIN chains ch ON ch.app_id = c.app_id AND ch.id = c.chain_id \
                    WHERE c.app_id = v.app_id AND c.identity = v.identity AND c.superseded_by IS NULL \
                    AND ch.revoked_at IS NULL) AS active, \
                   (SELECT MAX(c.published_at) FROM cards c WHERE c.app_id = v.app_id AND c.identity = v.identity) \
                    AS last_published_at, \
                   (SELECT MAX(ch.revoked_at) FROM chains ch WHERE ch.app_id = v.app_id AND ch.identity = v.identity) \
                    AS last_revoked_at \
                   FROM identity_versions v \
                   WHERE v.app_id = $1 AND substr(v.identity, 1, length($2)) = $2 \
                   AND ($3 IS NULL OR v.identity COLLATE \"C\" > $3) \
                   ORDER BY v.identity COLLATE \"C\" LIMIT $4";
        self.read_all(sql, &[query.app_id.into(), query.prefix.into(), query.after.into(), query.limit.into()], |row| {
            Ok(IdentitySummary {
                identity: row.parse("identity", Identity::parse)?,
                version: row.get("version")?,
                cards: row.get("cards")?,
                active: row.get("active")?,
                last_published_at: row.get("last_published_at")?,
                last_revoked_at: row.get("last_revoked_at")?,
            })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn identity_history(
        &self,
        app_id: &AppId,
        identity: &Identity,
        after: Option<&HistoryCursor>,
        limit: i64,
    ) -> Result<Vec<HistoryCard>, StorageError> {
        let sql = "SELECT c.id, c.identity, c.chain_id, c.previous_card_id, c.superseded_by, c.chain_index, \
                   c.created_at, c.published_at, c.public_key, c.raw, ch.revoked_at, ch.revocation_reason, \
                   ch.revoked_by, ch.created_at AS chain_created_at \
                   FROM cards c JOIN chains ch ON ch.app_id = c.app_id AND ch.id = c.chain_id \
                   WHERE c.app_id = $1 AND c.identity = $2 \
                   AND ($3 IS NULL OR (ch.created_at, c.chain_id COLLATE \"C\", c.chain_index) > ($3, $4, $5)) \
                   ORDER BY ch.created_at, c.chain_id COLLATE \"C\", c.chain_index LIMIT $6";
        let (at, chain, index) = match after {
            Some(cursor) => (Some(cursor.chain_created_at), Some(cursor.chain_id.as_str()), Some(cursor.chain_index)),
            None => (None, None, None),
        };
        self.read_all(
            sql,
            &[app_id.into(), identity.into(), at.into(), chain.into(), index.into(), limit.into()],
            |row| Ok(HistoryCard { card: card_from_row(row)?, chain_created_at: row.get("chain_created_at")? }),
        )
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn identity_events(
        &self,
        app_id: &AppId,
        identity: &Identity,
        limit: i64,
    ) -> Result<Vec<EventRow>, StorageError> {
        let sql = "SELECT seq, body, prev_hash, hash FROM events \
                   WHERE app_id = $1 AND card_id IN (SELECT id FROM cards WHERE app_id = $1 AND identity = $2) \
                   ORDER BY seq LIMIT $3";
        self.read_all(sql, &[app_id.into(), identity.into(), limit.into()], |row| {
            Ok(EventRow {
                seq: row.get("seq")?,
                body: row.get("body")?,
                prev_hash: row.get("prev_hash")?,
                hash: row.get("hash")?,
            })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn app_counts(&self, app_id: &AppId) -> Result<AppCounts, StorageError> {
        let sql = "SELECT \
                   (SELECT COUNT(*) FROM identity_versions WHERE app_id = $1) AS identities, \
                   (SELECT COUNT(*) FROM cards WHERE app_id = $1) AS cards, \
                   (SELECT COUNT(*) FROM cards c JOIN chains ch ON ch.app_id = c.app_id AND ch.id = c.chain_id \
                    WHERE c.app_id = $1 AND c.superseded_by IS NULL AND ch.revoked_at IS NULL) AS active_cards, \
                   (SELECT COUNT(*) FROM chains WHERE app_id = $1 AND revoked_at IS NOT NULL) AS revoked_chains, \
                   (SELECT COUNT(*) FROM events WHERE app_id = $1) AS events";
        let counts = self
            .read_optional(sql, &[app_id.into()], |row| {
                Ok(AppCounts {
                    identities: row.get("identities")?,
                    cards: row.get("cards")?,
                    active_cards: row.get("active_cards")?,
                    revoked_chains: row.get("revoked_chains")?,
                    events: row.get("events")?,
                })
            })
            .await?;
        Ok(counts.unwrap_or_default())
    }
}
