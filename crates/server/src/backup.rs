//! Backups and restores of the embedded database, the checks that make a copy trustworthy, and
//! the lock that keeps a restore from replacing a database a server is using.
//!
//! A backup is one consistent snapshot (`VACUUM INTO`, beside the writer), checked before it is
//! reported: it opens, and every app's event chain verifies. A restore checks the copy the same
//! way, brings it to the current schema, gives it a new epoch, and only then moves it into
//! place, keeping the database it replaces beside it. Lookup ETags need nothing from a restore:
//! they are derived from the content served (see `storage::identity_state`).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cardinal_card::log::{GENESIS_HASH, StoredEvent, verify_chain};

use crate::storage::{self, EventsQuery, PoolSettings, Store};

/// What a verified copy holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Census {
    /// Apps.
    pub apps: usize,
    /// Events, all of whose chains verified.
    pub events: u64,
    /// The database's epoch.
    pub epoch: String,
}

/// Events read per page while verifying.
const PAGE: i64 = 1000;

/// Verifies every app's event chain from its genesis, and counts.
pub async fn verify_log(store: &dyn Store) -> anyhow::Result<Census> {
    let apps = store.list_apps().await?;
    let mut events = 0u64;
    for app in &apps {
        let (mut seq, mut head) = (0i64, GENESIS_HASH);
        loop {
            let query = EventsQuery { app_id: &app.id, after: seq, limit: PAGE, max_bytes: 64 << 20 };
            let page = store.list_events(query).await?;
            let Some(last) = page.last() else { break };
            verify_chain(
                seq,
                head,
                page.iter().map(|e| StoredEvent { body: e.body.as_bytes(), prev_hash: &e.prev_hash, hash: &e.hash }),
            )
            .with_context(|| format!("the event log of app {} does not verify", app.id))?;
            seq = last.seq;
            head = last.hash.as_slice().try_into().context("an event hash is not 32 bytes")?;
            events += page.len() as u64;
        }
    }
    Ok(Census { apps: apps.len(), events, epoch: store.epoch().await? })
}

/// Writes a consistent copy of the running database into `out` (owner-only, never over an
/// existing file), then opens the copy and verifies it.
pub async fn back_up(store: &dyn Store, out: &Path) -> anyhow::Result<Census> {
    create_empty_private(out)?;
    if let Err(error) = store.back_up_into(out).await {
        let _ = std::fs::remove_file(out);
        return Err(error).context("copying the database");
    }
    let copy = open_sqlite(out).await?;
    let census = verify_log(copy.as_ref()).await.context("the copy does not verify");
    copy.close().await;
    census
}

/// Restores the SQLite database `url` names from the backup `from`: refuses while a server
/// holds the database, checks the backup (it opens, migrates to this version, and its event
/// chains verify), renews its epoch, then moves it into place. The replaced database is kept
/// as `<file>.replaced-<unix seconds>`.
pub async fn restore(url: &str, from: &Path) -> anyhow::Result<(Census, Option<PathBuf>)> {
    let target = storage::sql::sqlite_file(url)?;
    let _lock = ServingLock::exclusive(&target)?;
    let staged = with_suffix(&target, ".restoring");
    remove_with_journal(&staged)?;
    if let Some(dir) = target.parent() {
        crate::files::create_private_dir(dir)?;
    }
    create_empty_private(&staged)?;
    std::fs::copy(from, &staged).with_context(|| format!("copying {}", from.display()))?;
    // `copy` gives the copy the backup's mode.
    crate::files::make_private(&staged)?;
    let census = async {
        let copy = open_sqlite(&staged).await?;
        let checked = async {
            copy.migrate().await.context("bringing the backup to this version's schema")?;
            let census = verify_log(copy.as_ref()).await.context("the backup does not verify")?;
            copy.renew_epoch().await?;
            anyhow::Ok(census)
        }
        .await;
        let epoch = copy.epoch().await;
        copy.close().await;
        Ok::<_, anyhow::Error>(Census { epoch: epoch?, ..checked? })
    }
    .await;
    let census = match census {
        Ok(census) => census,
        Err(error) => {
            remove_with_journal(&staged)?;
            return Err(error);
        }
    };
    let replaced = if target.exists() {
        let aside = with_suffix(&target, &format!(".replaced-{}", unix_now()));
        move_with_journal(&target, &aside)?;
        Some(aside)
    } else {
        None
    };
    move_with_journal(&staged, &target)?;
    Ok((census, replaced))
}

/// Opens an SQLite file as a store, without migrating it.
async fn open_sqlite(path: &Path) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    let url = format!("sqlite://{}", path.display());
    storage::connect(&url, &PoolSettings::simple(2, std::time::Duration::from_secs(5)))
        .await
        .with_context(|| format!("opening {}", path.display()))
}

fn create_empty_private(path: &Path) -> anyhow::Result<()> {
    crate::files::write_private_file(path, b"")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The files SQLite keeps beside a database in WAL mode.
const JOURNALS: [&str; 2] = ["-wal", "-shm"];

fn move_with_journal(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to).with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
    for journal in JOURNALS {
        let (from, to) = (with_suffix(from, journal), with_suffix(to, journal));
        if from.exists() {
            std::fs::rename(&from, &to).with_context(|| format!("moving {}", from.display()))?;
        }
    }
    Ok(())
}

fn remove_with_journal(path: &Path) -> anyhow::Result<()> {
    for file in std::iter::once(path.to_path_buf()).chain(JOURNALS.map(|journal| with_suffix(path, journal))) {
        match std::fs::remove_file(&file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).with_context(|| format!("removing {}", file.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// A lock on `<database file>.lock`: every server (and admin command) holds it shared while it
/// uses an SQLite database, and a restore takes it exclusively, so neither replaces the other's
/// file under it. (SQLite's own locks cannot say this: an idle server holds none.)
#[derive(Debug)]
pub struct ServingLock {
    _file: File,
}

impl ServingLock {
    fn file(database: &Path) -> anyhow::Result<File> {
        if let Some(dir) = database.parent() {
            crate::files::create_private_dir(dir)?;
        }
        let path = with_suffix(database, ".lock");
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .mode(0o600)
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))
    }

    /// Held by a server on the SQLite database `url` names; `None` for PostgreSQL. Refused while
    /// a restore runs.
    pub fn shared(url: &str) -> anyhow::Result<Option<ServingLock>> {
        if storage::Backend::of_url(url) != Some(storage::Backend::Sqlite) {
            return Ok(None);
        }
        let file = Self::file(&storage::sql::sqlite_file(url)?)?;
        if file.try_lock_shared().is_err() {
            bail!("a restore of this database is in progress");
        }
        Ok(Some(ServingLock { _file: file }))
    }

    fn exclusive(database: &Path) -> anyhow::Result<ServingLock> {
        let file = Self::file(database)?;
        if file.try_lock().is_err() {
            bail!(
                "{} is in use by a running Cardinal (stop it first: a restore replaces the database file)",
                database.display()
            );
        }
        Ok(ServingLock { _file: file })
    }
}
