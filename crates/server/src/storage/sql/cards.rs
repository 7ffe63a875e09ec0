//! Cards, their chains and the identities' change counters.

use async_trait::async_trait;

use super::SqlStore;
use super::db::{Arg, Flow, Row, Session};
use crate::domain::{AppId, CardId, Identity};
use crate::storage::{
    ActiveDigest, ActiveLookup, CardRecord, CardStore, CardsQuery, EventDraft, IdentityState, NewCard, Placement,
    Revocation, StorageError, active_digest, constraint, digest_text, parse_digest,
};

/// A card and its chain's revocation, then the given clauses.
macro_rules! select_cards {
    ($($clauses:literal),*) => {
        concat!(
            "SELECT c.id, c.identity, c.chain_id, c.previous_card_id, c.superseded_by, c.chain_index, c.created_at, \
             c.published_at, c.public_key, c.raw, ch.revoked_at, ch.revocation_reason, ch.revoked_by \
             FROM cards c JOIN chains ch ON ch.app_id = c.app_id AND ch.id = c.chain_id ",
            $($clauses),*
        )
    };
}

pub(super) fn card_from_row(row: &Row) -> Result<CardRecord, StorageError> {
    Ok(CardRecord {
        id: row.parse("id", str::parse::<CardId>)?,
        identity: row.parse("identity", Identity::parse)?,
        chain_id: row.parse("chain_id", str::parse::<CardId>)?,
        previous_card_id: row.parse_optional("previous_card_id", str::parse::<CardId>)?,
        superseded_by: row.parse_optional("superseded_by", str::parse::<CardId>)?,
        chain_index: row.get("chain_index")?,
        created_at: row.get("created_at")?,
        published_at: row.get("published_at")?,
        public_key: row.get("public_key")?,
        raw: row.get("raw")?,
        revoked_at: row.get("revoked_at")?,
        revocation_reason: row.get("revocation_reason")?,
        revoked_by: row.get("revoked_by")?,
    })
}

/// Counts stored card bytes against a read's budget.
struct Budget {
    used: usize,
    max: usize,
}

impl Budget {
    fn new(max: usize) -> Self {
        Budget { used: 0, max }
    }

    fn spend(&mut self, card: &str) -> Result<(), StorageError> {
        self.used += card.len();
        if self.used > self.max { Err(StorageError::TooLarge { max_bytes: self.max }) } else { Ok(()) }
    }
}

/// The cards a query returns, refused (before they are all read) once they exceed `max_bytes`.
async fn cards_within(
    session: &mut Session<'_>,
    sql: &'static str,
    args: &[Arg<'_>],
    max_bytes: usize,
) -> Result<Vec<CardRecord>, StorageError> {
    let mut cards = Vec::new();
    let mut budget = Budget::new(max_bytes);
    session
        .for_each(sql, args, |row| {
            let card = card_from_row(&row)?;
            budget.spend(&card.raw)?;
            cards.push(card);
            Ok(Flow::Continue)
        })
        .await?;
    Ok(cards)
}

/// Changes the identity's state: bumps its counter, then recomputes the digest of its active
/// cards. The counter's row is also the identity's lock: a writer that holds it sees every other
/// writer's committed chains (each statement reads a new snapshot), so the last writer to commit
/// leaves the digest of everything committed.
async fn record_change(session: &mut Session<'_>, app_id: &AppId, identity: &Identity) -> Result<(), StorageError> {
    session
        .execute(
            "INSERT INTO identity_versions (app_id, identity, version) VALUES ($1, $2, 1) \
             ON CONFLICT (app_id, identity) DO UPDATE SET version = identity_versions.version + 1",
            &[app_id.into(), identity.into()],
        )
        .await?;
    let digest = active_digest_of(session, app_id, identity).await?;
    session
        .execute(
            "UPDATE identity_versions SET digest = $3 WHERE app_id = $1 AND identity = $2",
            &[app_id.into(), identity.into(), digest_text(&digest).as_str().into()],
        )
        .await
        .map(|_| ())
}

/// The digest of the identity's active cards as this session sees them.
pub(super) async fn active_digest_of(
    session: &mut Session<'_>,
    app_id: &AppId,
    identity: &Identity,
) -> Result<ActiveDigest, StorageError> {
    let ids = session
        .fetch_all(
            "SELECT c.id FROM cards c JOIN chains ch ON ch.app_id = c.app_id AND ch.id = c.chain_id \
             WHERE c.app_id = $1 AND c.identity = $2 AND c.superseded_by IS NULL AND ch.revoked_at IS NULL",
            &[app_id.into(), identity.into()],
        )
        .await?
        .iter()
        .map(|row| row.parse("id", str::parse::<CardId>))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(active_digest(&ids))
}

impl SqlStore {
    /// Computes the digests that rows written before they existed lack (at most once per row,
    /// safely beside other instances doing the same), and says how many.
    pub(super) async fn complete_digests(&self) -> Result<usize, StorageError> {
        let mut completed = 0;
        loop {
            let mut tx = self.db.begin_write().await?;
            let mut session = tx.session();
            let rows = session
                .fetch_all(
                    "SELECT app_id, identity FROM identity_versions WHERE digest IS NULL LIMIT 500 FOR UPDATE",
                    &[],
                )
                .await?;
            if rows.is_empty() {
                return Ok(completed);
            }
            for row in &rows {
                let app_id = row.parse("app_id", AppId::parse)?;
                let identity = row.parse("identity", Identity::parse)?;
                let digest = active_digest_of(&mut session, &app_id, &identity).await?;
                session
                    .execute(
                        "UPDATE identity_versions SET digest = $3 WHERE app_id = $1 AND identity = $2",
                        &[(&app_id).into(), (&identity).into(), digest_text(&digest).as_str().into()],
                    )
                    .await?;
            }
            completed += rows.len();
            tx.commit().await?;
            tracing::info!(completed, "identity digests computed");
        }
    }
}

/// An identity's state as stored.
fn state_from_row(row: &Row) -> Result<IdentityState, StorageError> {
    let digest: Option<String> = row.get("digest")?;
    let digest = match digest {
        Some(text) => Some(parse_digest(&text).ok_or_else(|| StorageError::Corrupt(format!("digest {text:?}")))?),
        None => None,
    };
    Ok(IdentityState { version: row.get("version")?, digest })
}

/// Places the card's chain: a new one for a root, the head moved (compare-and-set) for a
/// successor, which must still head an unrevoked chain.
async fn place_chain(session: &mut Session<'_>, card: &NewCard, placement: &Placement) -> Result<(), StorageError> {
    match placement {
        Placement::Root { exclusive, .. } => {
            session
                .execute(
                    "INSERT INTO chains (app_id, id, identity, head_card_id, exclusive, created_at) \
                     VALUES ($1, $2, $3, $2, $4, $5)",
                    &[
                        (&card.app_id).into(),
                        (&card.id).into(),
                        (&card.identity).into(),
                        (*exclusive).into(),
                        card.published_at.into(),
                    ],
                )
                .await?;
        }
        Placement::Successor { chain_id, previous_card_id } => {
            let moved = session
                .execute(
                    "UPDATE chains SET head_card_id = $3 \
                     WHERE app_id = $1 AND id = $2 AND head_card_id = $4 AND revoked_at IS NULL",
                    &[(&card.app_id).into(), chain_id.into(), (&card.id).into(), previous_card_id.into()],
                )
                .await?;
            if moved != 1 {
                return Err(StorageError::conflict(constraint::CHAIN_HEAD_MOVED));
            }
        }
    }
    Ok(())
}

/// Under the identity's lock, refuses a non-exclusive root beyond the live-chain limit.
async fn check_live_chains(
    session: &mut Session<'_>,
    card: &NewCard,
    placement: &Placement,
) -> Result<(), StorageError> {
    let Placement::Root { exclusive: false, max_live_chains } = placement else { return Ok(()) };
    let live: i64 = session
        .fetch_optional(
            "SELECT COUNT(*) AS live FROM chains WHERE app_id = $1 AND identity = $2 AND revoked_at IS NULL",
            &[(&card.app_id).into(), (&card.identity).into()],
        )
        .await?
        .ok_or(StorageError::NotFound)?
        .get("live")?;
    if live > *max_live_chains { Err(StorageError::conflict(constraint::CHAINS_PER_IDENTITY)) } else { Ok(()) }
}

#[async_trait]
impl CardStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn insert_card(&self, card: &NewCard, placement: &Placement, log: &[EventDraft]) -> Result<(), StorageError> {
        let mut tx = self.db.begin_write().await?;
        let mut session = tx.session();
        place_chain(&mut session, card, placement).await?;
        let previous = placement.previous();
        session
            .execute(
                "INSERT INTO cards (app_id, id, identity, chain_id, previous_card_id, superseded_by, \
                 created_at, published_at, public_key, raw, chain_index) \
                 VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8, $9, $10)",
                &[
                    (&card.app_id).into(),
                    (&card.id).into(),
                    (&card.identity).into(),
                    placement.chain_id(&card.id).into(),
                    previous.into(),
                    card.created_at.into(),
                    card.published_at.into(),
                    (&card.public_key).into(),
                    (&card.raw).into(),
                    card.chain_index.into(),
                ],
            )
            .await?;
        if let Some(previous) = previous {
            let superseded = session
                .execute(
                    "UPDATE cards SET superseded_by = $3 WHERE app_id = $1 AND id = $2 AND superseded_by IS NULL",
                    &[(&card.app_id).into(), previous.into(), (&card.id).into()],
                )
                .await?;
            if superseded != 1 {
                return Err(StorageError::conflict(constraint::CHAIN_HEAD_MOVED));
            }
        }
        record_change(&mut session, &card.app_id, &card.identity).await?;
        check_live_chains(&mut session, card, placement).await?;
        self.finish_write(tx, &card.app_id, log).await
    }

    #[tracing::instrument(skip_all)]
    async fn find_card(&self, app_id: &AppId, id: &CardId) -> Result<Option<CardRecord>, StorageError> {
        let sql = select_cards!("WHERE c.app_id = $1 AND c.id = $2");
        self.read_optional(sql, &[app_id.into(), id.into()], card_from_row).await
    }

    #[tracing::instrument(skip_all)]
    async fn find_active_cards(&self, query: CardsQuery<'_>) -> Result<Vec<CardRecord>, StorageError> {
        let mut conn = self.reader(query.from).await?;
        let sql = select_cards!(
            "WHERE c.app_id = $1 AND c.identity = ANY($2) AND c.superseded_by IS NULL AND ch.revoked_at IS NULL",
            " ORDER BY c.identity, c.created_at DESC, c.published_at DESC, c.id"
        );
        cards_within(&mut conn.session(), sql, &[query.app_id.into(), query.identities.into()], query.max_bytes).await
    }

    #[tracing::instrument(skip_all)]
    async fn find_unrevoked_chain_cards(
        &self,
        query: CardsQuery<'_>,
        per_chain: i64,
    ) -> Result<Vec<CardRecord>, StorageError> {
        let mut conn = self.reader(query.from).await?;
        // The chain's head is its newest card: keep the `per_chain` cards up to it.
        let sql = select_cards!(
            "JOIN cards head ON head.app_id = ch.app_id AND head.id = ch.head_card_id \
             WHERE c.app_id = $1 AND c.identity = ANY($2) AND ch.revoked_at IS NULL \
             AND c.chain_index > head.chain_index - $3",
            " ORDER BY c.identity, c.created_at DESC, c.published_at DESC, c.id"
        );
        let args = [query.app_id.into(), query.identities.into(), per_chain.into()];
        cards_within(&mut conn.session(), sql, &args, query.max_bytes).await
    }

    #[tracing::instrument(skip_all)]
    async fn identity_states(
        &self,
        app_id: &AppId,
        ids: &[Identity],
    ) -> Result<Vec<(Identity, IdentityState)>, StorageError> {
        let sql = "SELECT identity, version, digest FROM identity_versions WHERE app_id = $1 AND identity = ANY($2)";
        self.read_all(sql, &[app_id.into(), ids.into()], |row| {
            Ok((row.parse("identity", Identity::parse)?, state_from_row(row)?))
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn lookup_active(&self, query: CardsQuery<'_>) -> Result<ActiveLookup, StorageError> {
        let mut conn = self.reader(query.from).await?;
        let mut found = ActiveLookup::default();
        let mut budget = Budget::new(query.max_bytes);
        // One statement, so the states (the ETag) and the cards come from one snapshot. An
        // identity without a state row has never had a card.
        let sql = "SELECT v.identity, v.version, v.digest, c.id, c.chain_id, c.previous_card_id, c.created_at, c.published_at, \
                   c.public_key, c.raw, c.chain_index, ch.revoked_at \
                   FROM identity_versions v \
                   LEFT JOIN cards c ON c.app_id = v.app_id AND c.identity = v.identity AND c.superseded_by IS NULL \
                   LEFT JOIN chains ch ON ch.app_id = c.app_id AND ch.id = c.chain_id \
                   WHERE v.app_id = $1 AND v.identity = ANY($2) \
                   ORDER BY v.identity, c.created_at DESC, c.published_at DESC, c.id";
        conn.session()
            .for_each(sql, &[query.app_id.into(), query.identities.into()], |row| {
                let identity = row.parse("identity", Identity::parse)?;
                if found.states.last().is_none_or(|(last, _)| *last != identity) {
                    found.states.push((identity.clone(), state_from_row(&row)?));
                }
                // The head of a revoked chain is not active. (Filtering it in the join would need
                // a nested join, which SQLite plans as a scan of every card.)
                let id = row.parse_optional("id", str::parse::<CardId>)?;
                let revoked_at: Option<i64> = row.get("revoked_at")?;
                let Some(id) = id.filter(|_| revoked_at.is_none()) else { return Ok(Flow::Continue) };
                let raw: String = row.get("raw")?;
                budget.spend(&raw)?;
                found.cards.push(CardRecord {
                    id,
                    identity,
                    chain_id: row.parse("chain_id", str::parse::<CardId>)?,
                    previous_card_id: row.parse_optional("previous_card_id", str::parse::<CardId>)?,
                    superseded_by: None,
                    chain_index: row.get("chain_index")?,
                    created_at: row.get("created_at")?,
                    published_at: row.get("published_at")?,
                    public_key: row.get("public_key")?,
                    raw,
                    revoked_at: None,
                    revocation_reason: None,
                    revoked_by: None,
                });
                Ok(Flow::Continue)
            })
            .await?;
        Ok(found)
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_chain(&self, revocation: &Revocation, event: EventDraft) -> Result<bool, StorageError> {
        let mut tx = self.db.begin_write().await?;
        let mut session = tx.session();
        let changed = session
            .execute(
                "UPDATE chains SET revoked_at = $3, revocation_reason = $4, revoked_by = $5 \
                 WHERE app_id = $1 AND id = $2 AND revoked_at IS NULL",
                &[
                    (&revocation.app_id).into(),
                    (&revocation.chain_id).into(),
                    revocation.at.into(),
                    revocation.reason.as_deref().into(),
                    (&revocation.by).into(),
                ],
            )
            .await?
            == 1;
        if changed {
            record_change(&mut session, &revocation.app_id, &revocation.identity).await?;
        }
        let events = if changed { std::slice::from_ref(&event) } else { &[] };
        self.finish_write(tx, &revocation.app_id, events).await?;
        Ok(changed)
    }
}
