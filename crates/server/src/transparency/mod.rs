//! The transparency log's rules (docs/TRANSPARENCY.md): each app's event log published as a C2SP
//! log. The tree itself grows in the sequencing round (storage); here it is signed into
//! checkpoints, checked before every signature and at start, and read for proofs and tiles.
//!
//! A log must never fork: a size is never signed with two roots, nor a size below the newest.
//! Before each signature the stored tree must reproduce the newest checkpoint's root, the
//! checkpoint must be this key's and of this database's epoch (a restore renews it: the
//! restored history may lack acknowledged events, so the origin cannot go on). At start the
//! entries themselves, read from `events.body`, must reproduce the newest checkpoint's root and
//! the stored tree. On any disagreement the log of that app is refused: nothing more is signed
//! for its origin, an error is logged, `cardinal_transparency_inconsistent_total` counts it,
//! and the stored checkpoint is still served. A new `origin_prefix` starts new logs.

mod key;
#[cfg(test)]
mod tests;
pub mod witness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use cardinal_card::tlog::wire::CardLog;
use cardinal_card::tlog::{self, Checkpoint, Hash, LogKey, TilePath, VerifierKey};
use thiserror::Error;

use crate::clock::Clock;
use crate::domain::AppId;
use crate::storage::{CheckpointRecord, StorageError, Store};

pub use key::{load_log_key, witnesses};

/// Entries read per query when the start check replays a log.
const REPLAY_PAGE: u64 = 1000;

/// What the log's reads and signing can fail with.
#[derive(Debug, Error)]
pub enum TransparencyError {
    /// No such log, tile or bundle (yet).
    #[error("not found")]
    NotFound,
    /// Indexes or sizes out of range.
    #[error("{0}")]
    InvalidRequest(String),
    /// The log cannot answer now (no checkpoint covers what was asked, or it is refused).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Sends one HTTP POST (url, text body, timeout) and answers (status, content type, body): how
/// checkpoints reach witnesses. The server crate compiles no HTTP client; the binary passes one
/// (`cardinal_client::http_post`).
pub type Post = Arc<
    dyn Fn(
            String,
            String,
            Duration,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(u16, String, String), String>> + Send>>
        + Send
        + Sync,
>;

/// A configured witness.
#[derive(Debug, Clone)]
pub struct Witness {
    /// Its name (the cosignature key name).
    pub name: String,
    /// Its submission prefix.
    pub url: String,
    /// Its cosignature verifier key.
    pub vkey: VerifierKey,
}

/// The log: what it signs with, what it is called, how often it signs.
pub struct Transparency {
    store: Arc<dyn Store>,
    key: LogKey,
    prefix: String,
    interval: Duration,
    clock: Arc<dyn Clock>,
    witnesses: Vec<Witness>,
    quorum: usize,
    /// Apps whose log is refused, with why.
    refused: Mutex<HashMap<AppId, String>>,
    /// Signing rounds never overlap within this process (several processes may sign: the tree
    /// is deterministic and Ed25519 signatures too, so their inserts are duplicates).
    signing: tokio::sync::Mutex<()>,
    inconsistent: prometheus::IntCounter,
    submissions: prometheus::IntCounterVec,
    post: Option<Post>,
    witness_timeout: Duration,
}

impl std::fmt::Debug for Transparency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transparency").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// How the log is set up.
pub struct LogSetup {
    /// The signing key.
    pub key: LogKey,
    /// Origins are `<prefix>/<app_id>`.
    pub origin_prefix: String,
    /// Checkpoint cadence.
    pub interval: Duration,
    /// Witnesses and how many cosignatures make a quorum.
    pub witnesses: Vec<Witness>,
    /// Cosignatures required.
    pub quorum: usize,
    /// How checkpoints reach the witnesses (none: they are not contacted).
    pub post: Option<Post>,
    /// How long a witness has to answer.
    pub witness_timeout: Duration,
}

impl Transparency {
    /// The log over `store`.
    pub fn new(store: Arc<dyn Store>, setup: LogSetup, clock: Arc<dyn Clock>) -> Transparency {
        let inconsistent = prometheus::IntCounter::new(
            "cardinal_transparency_inconsistent_total",
            "Times a log was found to disagree with its stored checkpoints and was not signed",
        )
        .expect("a constant, valid metric name");
        let submissions = prometheus::IntCounterVec::new(
            prometheus::Opts::new("cardinal_witness_submissions_total", "Checkpoints sent to witnesses, by outcome"),
            &["witness", "result"],
        )
        .expect("a constant, valid metric name");
        Transparency {
            store,
            key: setup.key,
            prefix: setup.origin_prefix.trim_end_matches('/').to_owned(),
            interval: setup.interval,
            clock,
            witnesses: setup.witnesses,
            quorum: setup.quorum,
            refused: Mutex::new(HashMap::new()),
            signing: tokio::sync::Mutex::new(()),
            inconsistent,
            submissions,
            post: setup.post,
            witness_timeout: setup.witness_timeout,
        }
    }

    /// The witness submissions counter, for the metrics registry.
    pub fn submissions_counter(&self) -> prometheus::IntCounterVec {
        self.submissions.clone()
    }

    /// The counter of refusals, for the metrics registry.
    pub fn inconsistent_counter(&self) -> prometheus::IntCounter {
        self.inconsistent.clone()
    }

    /// The app's log's name.
    pub fn origin(&self, app_id: &AppId) -> String {
        format!("{}/{}", self.prefix, app_id.as_str())
    }

    /// The app's log's verifier key.
    pub fn vkey(&self, app_id: &AppId) -> VerifierKey {
        self.key.vkey(&self.origin(app_id))
    }

    /// The configured witnesses.
    pub fn witnesses(&self) -> &[Witness] {
        &self.witnesses
    }

    /// Cosignatures required of them.
    pub fn quorum(&self) -> usize {
        self.quorum
    }

    /// The checkpoint cadence.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Why the app's log is refused, if it is.
    pub fn refusal(&self, app_id: &AppId) -> Option<String> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).get(app_id).cloned()
    }

    fn refuse(&self, app_id: &AppId, origin: &str, why: String) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.contains_key(app_id) {
            return;
        }
        self.inconsistent.inc();
        tracing::error!(
            app = %app_id.as_str(),
            %origin,
            reason = %why,
            "REFUSING TO SIGN this transparency log: it disagrees with its stored checkpoints; the newest \
             checkpoint stays served. Set transparency.origin_prefix to start a new log."
        );
        refused.insert(app_id.clone(), why);
    }

    /// The start check: every app's newest checkpoint against the entries and the stored tree.
    /// Returns how many logs were refused.
    pub async fn check_at_start(&self) -> Result<usize, StorageError> {
        let epoch = self.store.epoch().await?;
        let mut refused = 0;
        for app in self.store.list_apps().await? {
            if let Err(why) = self.check_log(&app.id, &epoch).await? {
                self.refuse(&app.id, &self.origin(&app.id), why);
                refused += 1;
            }
        }
        Ok(refused)
    }

    /// Replays one app's entries: `Ok(Err(why))` when the log may not be signed.
    async fn check_log(&self, app_id: &AppId, epoch: &str) -> Result<Result<(), String>, StorageError> {
        let origin = self.origin(app_id);
        let size = self.store.tree_size(app_id).await?;
        let newest = self.store.newest_checkpoint(app_id, &origin).await?;
        if let Some(newest) = &newest
            && let Err(why) = self.continues(newest, size, epoch)
        {
            return Ok(Err(why));
        }
        let mut builder = tlog::RootBuilder::default();
        while builder.size() < size {
            let end = (builder.size() + REPLAY_PAGE).min(size);
            let entries = self.store.entries(app_id, builder.size(), end).await?;
            if entries.len() as u64 != end - builder.size() {
                return Ok(Err(format!(
                    "the event log has a gap before entry {}",
                    builder.size() + entries.len() as u64
                )));
            }
            for entry in &entries {
                builder.push(entry.as_bytes());
                if let Some(newest) = &newest
                    && builder.size() == newest.size
                    && builder.root().0 != newest.root
                {
                    return Ok(Err(format!(
                        "the entries give another root for size {} than its checkpoint",
                        newest.size
                    )));
                }
            }
        }
        if self.stored_root(app_id, size).await? != Some(builder.root()) {
            return Ok(Err(format!("the stored tree of size {size} is not the tree of the stored events")));
        }
        Ok(Ok(()))
    }

    /// Whether `newest` can be continued by a tree of `size` in this `epoch` (the cheap part,
    /// before every signature; the stored tree's root is compared by the caller).
    fn continues(&self, newest: &CheckpointRecord, size: u64, epoch: &str) -> Result<(), String> {
        if newest.epoch != epoch {
            return Err(format!(
                "checkpoint {} was signed in database epoch {}, this database is epoch {epoch} (restored): \
                 acknowledged events may be lost",
                newest.size, newest.epoch
            ));
        }
        if size < newest.size {
            return Err(format!("the log holds {size} entries, below its checkpoint of {}", newest.size));
        }
        if tlog::open_checkpoint(&newest.note, &self.vkey(&newest.app_id)).is_err() {
            return Err(format!("checkpoint {} is not signed by this log key", newest.size));
        }
        Ok(())
    }

    async fn stored_root(&self, app_id: &AppId, size: u64) -> Result<Option<Hash>, StorageError> {
        let hashes = self.store.tree_hashes(app_id, &tlog::root_indexes(size)).await?;
        Ok(tlog::root(size, &hashes).ok())
    }

    /// Signs a checkpoint for every app whose log outgrew its newest; returns how many.
    pub async fn sign_due(&self) -> Result<usize, StorageError> {
        let mut signed = 0;
        for app in self.store.list_apps().await? {
            if self.sign(&app.id).await?.is_some() {
                signed += 1;
            }
        }
        Ok(signed)
    }

    /// Signs the app's tree as it is now if it outgrew the newest checkpoint (and the log is
    /// not refused); returns the new checkpoint.
    pub async fn sign(&self, app_id: &AppId) -> Result<Option<CheckpointRecord>, StorageError> {
        let _signing = self.signing.lock().await;
        if self.refusal(app_id).is_some() {
            return Ok(None);
        }
        let origin = self.origin(app_id);
        let size = self.store.tree_size(app_id).await?;
        let newest = self.store.newest_checkpoint(app_id, &origin).await?;
        let epoch = self.store.epoch().await?;
        if let Some(newest) = &newest {
            if size <= newest.size && newest.epoch == epoch {
                return Ok(None);
            }
            let why = match self.continues(newest, size, &epoch) {
                Err(why) => Some(why),
                Ok(()) => (self.stored_root(app_id, newest.size).await?.map(|h| h.0) != Some(newest.root)).then(|| {
                    format!("the stored tree gives another root for size {} than its checkpoint", newest.size)
                }),
            };
            if let Some(why) = why {
                self.refuse(app_id, &origin, why);
                return Ok(None);
            }
        } else if size == 0 {
            return Ok(None);
        }
        let Some(root) = self.stored_root(app_id, size).await? else {
            self.refuse(app_id, &origin, format!("the stored tree does not cover size {size}"));
            return Ok(None);
        };
        let checkpoint = Checkpoint { origin: origin.clone(), size, root };
        let record = CheckpointRecord {
            app_id: app_id.clone(),
            origin: origin.clone(),
            size,
            root: root.0,
            note: self.key.sign(&checkpoint),
            epoch,
            signed_at: self.clock.now().timestamp_millis(),
        };
        let stored = self.store.insert_checkpoint(&record).await?;
        if stored.root != record.root {
            self.refuse(app_id, &origin, format!("size {size} is already signed with another root"));
            return Ok(None);
        }
        tracing::debug!(app = %app_id.as_str(), size, "signed a checkpoint");
        Ok(Some(stored))
    }

    /// Signs what is due every interval, until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(error) = self.sign_due().await {
                tracing::warn!(%error, "checkpoints could not be signed yet");
            }
            if self.post.is_some() && !self.witnesses.is_empty() {
                // Pushed beside the signing, never before it: a slow witness delays no checkpoint.
                let this = self.clone();
                tokio::spawn(async move {
                    if let Err(error) = this.push_witnesses().await {
                        tracing::warn!(%error, "checkpoints could not be sent to witnesses yet");
                    }
                });
            }
        }
    }

    /// Sends each app's newest checkpoint to every witness that has not cosigned it.
    pub async fn push_witnesses(&self) -> Result<(), StorageError> {
        let Some(post) = &self.post else { return Ok(()) };
        for app in self.store.list_apps().await? {
            let Some(newest) = self.newest(&app.id).await? else { continue };
            for witness in &self.witnesses {
                let last = self.store.last_cosigned(&app.id, &newest.origin, &witness.name).await?;
                if last == Some(newest.size) {
                    continue;
                }
                let result = self.submit(post, witness, &newest, last.unwrap_or(0), true).await;
                let label = match &result {
                    Ok(()) => "cosigned",
                    Err(outcome) => outcome,
                };
                self.submissions.with_label_values(&[witness.name.as_str(), label]).inc();
            }
        }
        Ok(())
    }

    /// One add-checkpoint; on a 409 naming a size the log has, once more from it.
    fn submit<'a>(
        &'a self,
        post: &'a Post,
        witness: &'a Witness,
        checkpoint: &'a CheckpointRecord,
        old: u64,
        retry: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), &'static str>> + Send + 'a>> {
        Box::pin(async move {
            let app_id = &checkpoint.app_id;
            let proof = match self.consistency_within(app_id, old, checkpoint.size).await {
                Ok(proof) => proof,
                Err(error) => {
                    tracing::warn!(%error, "no consistency proof for a witness");
                    return Err("error");
                }
            };
            let mut body = format!("old {old}\n");
            for hash in &proof {
                body.push_str(&tlog::encode_hash(hash));
                body.push('\n');
            }
            body.push('\n');
            body.push_str(&checkpoint.note);
            let url = format!("{}/add-checkpoint", witness.url);
            let answer = post(url, body, self.witness_timeout).await;
            let (status, content_type, text) = match answer {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::warn!(witness = %witness.name, %error, "a witness did not answer");
                    return Err("unreachable");
                }
            };
            let checkpoint_body =
                Checkpoint { origin: checkpoint.origin.clone(), size: checkpoint.size, root: Hash(checkpoint.root) }
                    .body();
            match status {
                200 => {
                    let mut kept = 0;
                    for line in text.lines() {
                        if let Ok(parsed) = tlog::SignatureLine::parse(line)
                            && parsed.name == witness.vkey.name
                            && parsed.id == witness.vkey.id
                            && tlog::verify_cosignature(&witness.vkey, &checkpoint_body, &parsed.signature).is_ok()
                        {
                            self.store
                                .insert_cosignature(
                                    app_id,
                                    &checkpoint.origin,
                                    checkpoint.size,
                                    &witness.name,
                                    &parsed.to_line(),
                                )
                                .await
                                .map_err(|_| "error")?;
                            kept += 1;
                        }
                    }
                    if kept == 0 {
                        tracing::warn!(witness = %witness.name, "a witness answered without a valid cosignature");
                        return Err("invalid");
                    }
                    Ok(())
                }
                409 if content_type.starts_with("text/x.tlog.size") => {
                    let size: Option<u64> = text.trim_end().parse().ok();
                    match size {
                        Some(size) if size <= checkpoint.size && retry => {
                            self.submit(post, witness, checkpoint, size, false).await
                        }
                        Some(size) if size > checkpoint.size => {
                            tracing::error!(witness = %witness.name, size, ours = checkpoint.size, "a witness has cosigned a larger tree of this log: a rollback or a fork");
                            Err("conflict")
                        }
                        _ => Err("conflict"),
                    }
                }
                status => {
                    tracing::warn!(witness = %witness.name, status, answer = %text.trim_end(), "a witness refused a checkpoint");
                    Err(if status == 422 { "inconsistent" } else { "refused" })
                }
            }
        })
    }

    /// A consistency proof from the stored tree, within `to` (not bounded by the newest
    /// checkpoint's size like the public one).
    async fn consistency_within(&self, app_id: &AppId, from: u64, to: u64) -> Result<Vec<Hash>, TransparencyError> {
        if from > to {
            return Err(TransparencyError::InvalidRequest("from > to".into()));
        }
        let hashes = self.store.tree_hashes(app_id, &tlog::consistency_indexes(from, to)).await?;
        tlog::consistency_proof(from, to, &hashes).map_err(|e| StorageError::Corrupt(e.to_string()).into())
    }

    /// A checkpoint's note as served: the log's signature, then every cosignature kept.
    pub async fn served_note(&self, checkpoint: &CheckpointRecord) -> Result<String, StorageError> {
        let mut note = checkpoint.note.clone();
        for (_, line) in self.store.cosignatures(&checkpoint.app_id, &checkpoint.origin, checkpoint.size).await? {
            note.push_str(&line);
        }
        Ok(note)
    }

    /// The newest checkpoint of the app's log.
    pub async fn newest(&self, app_id: &AppId) -> Result<Option<CheckpointRecord>, StorageError> {
        self.store.newest_checkpoint(app_id, &self.origin(app_id)).await
    }

    /// The newest checkpoint covering entry `index`: signs early when the newest does not.
    pub async fn covering(&self, app_id: &AppId, index: u64) -> Result<CheckpointRecord, TransparencyError> {
        if let Some(newest) = self.newest(app_id).await?
            && newest.size > index
        {
            return Ok(newest);
        }
        self.sign(app_id).await?;
        match self.newest(app_id).await? {
            Some(newest) if newest.size > index => Ok(newest),
            _ => Err(TransparencyError::Unavailable("no checkpoint covers this entry yet".into())),
        }
    }

    async fn newest_size(&self, app_id: &AppId) -> Result<u64, TransparencyError> {
        Ok(self.newest(app_id).await?.map_or(0, |c| c.size))
    }

    /// RFC 6962 PATH(index, D\[0:size\]), within the newest checkpoint.
    pub async fn inclusion(&self, app_id: &AppId, index: u64, size: u64) -> Result<Vec<Hash>, TransparencyError> {
        let newest = self.newest_size(app_id).await?;
        if index >= size || size > newest {
            return Err(TransparencyError::InvalidRequest(format!(
                "need 0 <= index < size <= {newest} (the newest checkpoint's size)"
            )));
        }
        let hashes = self.store.tree_hashes(app_id, &tlog::inclusion_indexes(index, size)).await?;
        tlog::inclusion_proof(index, size, &hashes).map_err(|e| StorageError::Corrupt(e.to_string()).into())
    }

    /// RFC 6962 PROOF(from, D\[0:to\]), within the newest checkpoint.
    pub async fn consistency(&self, app_id: &AppId, from: u64, to: u64) -> Result<Vec<Hash>, TransparencyError> {
        let newest = self.newest_size(app_id).await?;
        if from > to || to > newest {
            return Err(TransparencyError::InvalidRequest(format!(
                "need 0 <= from <= to <= {newest} (the newest checkpoint's size)"
            )));
        }
        let hashes = self.store.tree_hashes(app_id, &tlog::consistency_indexes(from, to)).await?;
        tlog::consistency_proof(from, to, &hashes).map_err(|e| StorageError::Corrupt(e.to_string()).into())
    }

    /// A hash tile's bytes, if the newest checkpoint serves it.
    pub async fn tile(&self, app_id: &AppId, tile: TilePath) -> Result<Vec<u8>, TransparencyError> {
        if tile.entries || !tile.served_at(self.newest_size(app_id).await?) {
            return Err(TransparencyError::NotFound);
        }
        let indexes = tile.hash_indexes();
        let hashes = self.store.tree_hashes(app_id, &indexes).await?;
        let ordered = indexes
            .iter()
            .map(|i| hashes.0.get(i).copied().ok_or_else(|| StorageError::Corrupt("a tile hash is missing".into())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(tlog::tile_bytes(&ordered))
    }

    /// An entry bundle's bytes, if the newest checkpoint serves it.
    pub async fn bundle(&self, app_id: &AppId, tile: TilePath) -> Result<Vec<u8>, TransparencyError> {
        if !tile.entries || !tile.served_at(self.newest_size(app_id).await?) {
            return Err(TransparencyError::NotFound);
        }
        let (start, end) = tile.entry_range();
        let entries = self.store.entries(app_id, start, end).await?;
        if entries.len() as u64 != end - start {
            return Err(StorageError::Corrupt("the event log has a gap".into()).into());
        }
        tlog::bundle_bytes(entries.iter().map(|e| e.as_bytes()))
            .map_err(|e| StorageError::Corrupt(e.to_string()).into())
    }

    /// What a `proofs=true` lookup adds: a checkpoint covering every card's `card_published`
    /// entry (signed early when the newest does not), and each card's entry and inclusion proof
    /// under it, by card id.
    pub async fn card_proofs(
        &self,
        app_id: &AppId,
        card_ids: &[&str],
    ) -> Result<(CheckpointRecord, HashMap<String, CardLog>), TransparencyError> {
        let entries = self.store.published_entries(app_id, card_ids).await?;
        if entries.len() != card_ids.len() {
            return Err(StorageError::Corrupt("a card has no card_published entry".into()).into());
        }
        let needed = entries.iter().map(|(_, index, _)| *index).max().unwrap_or(0);
        let checkpoint = self.covering(app_id, needed).await?;
        let size = checkpoint.size;
        let mut indexes: Vec<u64> =
            entries.iter().flat_map(|(_, index, _)| tlog::inclusion_indexes(*index, size)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let hashes = self.store.tree_hashes(app_id, &indexes).await?;
        let mut logs = HashMap::with_capacity(entries.len());
        for (card_id, index, entry) in entries {
            let proof =
                tlog::inclusion_proof(index, size, &hashes).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            logs.insert(
                card_id,
                CardLog {
                    index,
                    entry: base64::engine::general_purpose::STANDARD.encode(entry.as_bytes()),
                    inclusion: proof.iter().map(tlog::encode_hash).collect(),
                },
            );
        }
        Ok((checkpoint, logs))
    }

    /// Entry `index` (the body of event `index + 1`).
    pub async fn entry(&self, app_id: &AppId, index: u64) -> Result<String, TransparencyError> {
        self.store.entries(app_id, index, index + 1).await?.pop().ok_or(TransparencyError::NotFound)
    }
}
