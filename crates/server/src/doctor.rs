//! `cardinal doctor`: checks a deployment the way an operator would, one finding per check,
//! each with what to do about it.

use std::path::Path;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde::Serialize;

use crate::config::Settings;
use crate::storage::{Backend, Heard, Store};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing to do.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Will not work (or not safely) until fixed.
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What was checked.
    pub check: &'static str,
    /// How it came out.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do, when something is to be done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Finding { check, verdict: Verdict::Ok, detail: detail.into(), fix: None }
    }

    fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding { check, verdict: Verdict::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }

    fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding { check, verdict: Verdict::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

const DATABASE_TIMEOUT: Duration = Duration::from_secs(5);
const LISTENER_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs every check on a configuration that loaded.
pub async fn examine(settings: &Settings) -> Vec<Finding> {
    let mut findings = vec![Finding::ok("configuration", "parses and validates")];
    findings.push(service_key(settings));
    if settings.bootstrap.enabled {
        findings.push(private_file("bootstrap key", &settings.bootstrap.key_file, true));
    }
    let url = settings.database.exposed_url();
    if Backend::of_url(url) == Some(Backend::Sqlite) {
        match crate::storage::sql::sqlite_file(url) {
            Ok(file) if !file.exists() => {
                findings.push(Finding::warn(
                    "database",
                    format!("no database yet at {}", file.display()),
                    "`cardinal serve` (or `cardinal migrate`) creates it",
                ));
                return findings;
            }
            Ok(file) => findings.push(data_directory(&file)),
            Err(error) => {
                findings.push(Finding::fail("database", error.to_string(), "fix database.url"));
                return findings;
            }
        }
    }
    let started = Instant::now();
    let connected = tokio::time::timeout(DATABASE_TIMEOUT, async {
        let store = crate::storage::connect(url, &settings.database.pool()).await?;
        store.ping().await?;
        Ok::<_, crate::storage::StorageError>(store)
    })
    .await;
    let store = match connected {
        Ok(Ok(store)) => store,
        Ok(Err(error)) => {
            findings.push(Finding::fail(
                "database",
                format!("cannot be reached: {error}"),
                "check database.url (DATABASE_URL), that the server runs and that this host may connect",
            ));
            return findings;
        }
        Err(_) => {
            findings.push(Finding::fail(
                "database",
                format!("did not answer within {DATABASE_TIMEOUT:?}"),
                "check the network path and the database server's load",
            ));
            return findings;
        }
    };
    findings.push(Finding::ok(
        "database",
        format!("{} answers ({} ms)", store.backend().as_str(), started.elapsed().as_millis()),
    ));
    findings.push(migrations(store.as_ref()).await);
    findings.push(clock_skew(store.as_ref(), settings).await);
    if store.backend() == Backend::Postgres {
        findings.push(listener(store.as_ref(), settings).await);
    }
    store.close().await;
    findings
}

fn service_key(settings: &Settings) -> Finding {
    if settings.service.signing_key.as_ref().is_some_and(|key| !key.expose_secret().is_empty()) {
        return Finding::ok("service key", "provisioned in the configuration (service.signing_key)");
    }
    let file = &settings.service.signing_key_file;
    if !file.exists() {
        return if settings.service.generate_signing_key {
            Finding::warn(
                "service key",
                format!("{} does not exist yet; the first start generates it", file.display()),
                "back it up once generated: every pinned client trusts it (README, Backups and restores)",
            )
        } else {
            Finding::fail(
                "service key",
                format!("{} does not exist and generating it is off", file.display()),
                "provision the key every instance shares at service.signing_key_file",
            )
        };
    }
    let read = std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|text| cardinal_card::SigningKey::from_text(&text).map_err(|e| e.to_string()));
    if let Err(error) = read {
        return Finding::fail(
            "service key",
            format!("{} is not a usable key: {error}", file.display()),
            "restore it from its backup",
        );
    }
    private_file("service key", file, false)
}

/// A secret file: readable by its owner only.
fn private_file(check: &'static str, file: &Path, may_be_missing: bool) -> Finding {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(file) {
        Ok(metadata) => {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 == 0 {
                Finding::ok(check, format!("{} (mode {mode:04o})", file.display()))
            } else {
                Finding::fail(
                    check,
                    format!("{} is readable by others (mode {mode:04o})", file.display()),
                    format!("chmod 600 {}", file.display()),
                )
            }
        }
        Err(_) if may_be_missing => Finding::ok(check, format!("{} not written yet", file.display())),
        Err(error) => Finding::fail(check, format!("{}: {error}", file.display()), "check the path"),
    }
}

fn data_directory(database: &Path) -> Finding {
    use std::os::unix::fs::PermissionsExt;
    let directory = database.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match std::fs::metadata(directory) {
        Ok(metadata) if metadata.permissions().mode() & 0o007 != 0 => Finding::warn(
            "data directory",
            format!(
                "{} is open to other users (mode {:04o})",
                directory.display(),
                metadata.permissions().mode() & 0o777
            ),
            format!("chmod o-rwx {}", directory.display()),
        ),
        Ok(_) => Finding::ok("data directory", directory.display().to_string()),
        Err(error) => Finding::fail("data directory", format!("{}: {error}", directory.display()), "check the path"),
    }
}

async fn migrations(store: &dyn Store) -> Finding {
    let schema = match store.schema().await {
        Ok(schema) => schema,
        Err(error) => return Finding::fail("migrations", format!("cannot read the history: {error}"), "see the logs"),
    };
    let pending: Vec<i64> = schema.known.iter().filter(|v| !schema.applied.contains(v)).copied().collect();
    let unknown: Vec<i64> = schema.applied.iter().filter(|v| !schema.known.contains(v)).copied().collect();
    if !unknown.is_empty() {
        Finding::fail(
            "migrations",
            format!("the database has migrations this build does not know: {unknown:?}"),
            "run the Cardinal version that migrated it, or a newer one",
        )
    } else if !pending.is_empty() {
        Finding::warn(
            "migrations",
            format!("{} of {} applied; pending: {pending:?}", schema.applied.len(), schema.known.len()),
            "`cardinal migrate` (serve also migrates when it starts)",
        )
    } else {
        Finding::ok("migrations", format!("all {} applied", schema.known.len()))
    }
}

async fn clock_skew(store: &dyn Store, settings: &Settings) -> Finding {
    let before = chrono::Utc::now().timestamp_millis();
    let theirs = store.database_clock().await;
    let after = chrono::Utc::now().timestamp_millis();
    match theirs {
        Ok(None) => Finding::ok("clock", "the database shares this machine's clock"),
        Ok(Some(theirs)) => {
            let ours = before + (after - before) / 2;
            let skew_ms = theirs - ours;
            let tolerated_ms = settings.auth.clock_skew_secs.saturating_mul(1000);
            let detail = format!("the database's clock is {skew_ms:+} ms from this machine's");
            if skew_ms.abs() > tolerated_ms {
                Finding::fail("clock", detail, "run NTP (chrony, systemd-timesyncd) on both machines")
            } else if skew_ms.abs() > tolerated_ms / 4 {
                Finding::warn("clock", detail, "check NTP: tokens are judged by this machine's clock")
            } else {
                Finding::ok("clock", detail)
            }
        }
        Err(error) => Finding::fail("clock", format!("cannot read the database's clock: {error}"), "see the logs"),
    }
}

/// The change listener proves it hears by hearing its own probe, as the server's does.
async fn listener(store: &dyn Store, settings: &Settings) -> Finding {
    let (sender, mut confirmations) = tokio::sync::mpsc::unbounded_channel();
    let heard = move |heard: Heard| {
        if let Heard::Confirmed { .. } = heard {
            let _ = sender.send(());
        }
    };
    let started = Instant::now();
    let watch = store.watch_changes(Duration::from_millis(200), &heard);
    let outcome = tokio::time::timeout(LISTENER_TIMEOUT, async {
        tokio::select! {
            () = watch => false,
            confirmed = confirmations.recv() => confirmed.is_some(),
        }
    })
    .await;
    let fix = if settings.database.behind_pooler && settings.database.listen_url.expose_secret().is_empty() {
        "behind a pooler, set database.listen_url to a direct URL of the primary (LISTEN does not pass a transaction-mode pooler)"
    } else {
        "check database.listen_url: it must reach the primary directly; lookups revalidate from the database until it hears"
    };
    match outcome {
        Ok(true) => Finding::ok("listener", format!("heard its own probe in {} ms", started.elapsed().as_millis())),
        Ok(false) => Finding::fail("listener", "the listening connection could not be kept", fix),
        Err(_) => Finding::fail("listener", format!("heard nothing back within {LISTENER_TIMEOUT:?}"), fix),
    }
}
