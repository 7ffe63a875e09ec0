//! Apps, API keys and the service key: what `cardinal app|key` and the first start do.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use cardinal_card::log::EventKind;
use cardinal_card::{PublicKey, SigningKey};
use secrecy::ExposeSecret;

use crate::config::{ServiceSettings, Settings};
use crate::storage::{ApiKeyRecord, AppRecord, CardStore, CardsPerIdentity, EventDraft, KeyRole, StorageError};

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn event(kind: EventKind, actor: &str, detail: BTreeMap<String, String>) -> EventDraft {
    EventDraft { kind, at_ms: now().timestamp_millis(), card_id: None, identity: None, actor: actor.to_owned(), detail }
}

/// App ids are short and URL- and JWT-safe.
pub fn validate_app_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        bail!("app ids are 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'");
    }
    Ok(())
}

/// Creates an app.
pub async fn create_app(
    store: &dyn CardStore,
    id: &str,
    policy: CardsPerIdentity,
    actor: &str,
) -> anyhow::Result<AppRecord> {
    validate_app_id(id)?;
    let app = AppRecord { id: id.to_owned(), cards_per_identity: policy, created_at: now().timestamp() };
    let detail = BTreeMap::from([("cards_per_identity".to_owned(), policy.as_str().to_owned())]);
    store
        .create_app(&app, event(EventKind::AppCreated, actor, detail))
        .await
        .with_context(|| format!("creating app {id}"))?;
    Ok(app)
}

/// A fresh key id: 128 random bits in hex, like Virgil's API key ids.
pub fn new_kid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Registers a public key for an app.
pub async fn add_key(
    store: &dyn CardStore,
    app_id: &str,
    role: KeyRole,
    public_key: &PublicKey,
    kid: Option<String>,
    actor: &str,
) -> anyhow::Result<ApiKeyRecord> {
    if store.find_app(app_id).await?.is_none() {
        bail!("there is no app {app_id:?}; create it with `cardinal app create {app_id}`");
    }
    // A small-order key would let anyone forge its tokens under a lax verifier; a non-canonical
    // one is a second spelling of some key. Neither is what an honest generator produces.
    public_key.check_strong().context("refusing this public key")?;
    let kid = kid.unwrap_or_else(new_kid);
    if kid.is_empty() || kid.len() > 128 || !kid.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("key ids are 1 to 128 printable ASCII characters without spaces");
    }
    let key = ApiKeyRecord {
        kid: kid.clone(),
        app_id: app_id.to_owned(),
        role,
        public_key: public_key.raw_bytes().to_vec(),
        created_at: now().timestamp(),
        revoked_at: None,
    };
    let detail = BTreeMap::from([("kid".to_owned(), kid.clone()), ("role".to_owned(), role.as_str().to_owned())]);
    store
        .insert_api_key(&key, event(EventKind::KeyAdded, actor, detail))
        .await
        .with_context(|| format!("adding key {kid}"))?;
    Ok(key)
}

/// Revokes a key: tokens it signed stop working at once. `Ok(false)` if it already was.
pub async fn revoke_key(store: &dyn CardStore, kid: &str, actor: &str) -> anyhow::Result<bool> {
    let detail = BTreeMap::from([("kid".to_owned(), kid.to_owned())]);
    match store.revoke_api_key(kid, now().timestamp(), event(EventKind::KeyRevoked, actor, detail)).await {
        Err(StorageError::NotFound) => bail!("there is no key {kid:?}"),
        other => Ok(other?),
    }
}

/// Writes a new private key readable by its owner only. The file must not exist, and a symlink
/// in its place is refused (O_EXCL, O_NOFOLLOW): a key is never written through a link someone
/// planted, nor over another key.
pub fn write_private_key(path: &Path, key: &SigningKey) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        crate::files::create_private_dir(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {} (it must not exist yet)", path.display()))?;
    file.write_all(key.to_pkcs8_pem().as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Reads a private key file (PKCS#8 PEM or base64 DER).
pub fn read_private_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SigningKey::from_text(&text).with_context(|| format!("{} is not an Ed25519 PKCS#8 key", path.display()))
}

/// The service's countersigning key: from the settings, from its file, or created on first start.
pub fn load_service_key(settings: &ServiceSettings) -> anyhow::Result<SigningKey> {
    if let Some(secret) = &settings.signing_key {
        return SigningKey::from_text(secret.expose_secret())
            .context("service.signing_key is not an Ed25519 PKCS#8 key");
    }
    let path = &settings.signing_key_file;
    if path.exists() {
        return read_private_key(path);
    }
    if !settings.generate_signing_key {
        bail!("the service key {} does not exist and service.generate_signing_key is off", path.display());
    }
    let key = SigningKey::generate();
    write_private_key(path, &key)?;
    tracing::info!(path = %path.display(), public_key = %key.public_key().to_spki_base64(), "created the service signing key");
    Ok(key)
}

/// The first start: with no app at all, create the default app and an app-role key, and say how
/// to mint a token with it.
pub async fn bootstrap(store: &dyn CardStore, settings: &Settings) -> anyhow::Result<()> {
    if !settings.bootstrap.enabled || !store.list_apps().await?.is_empty() {
        return Ok(());
    }
    let app_id = &settings.bootstrap.app_id;
    create_app(store, app_id, settings.apps.cards_per_identity, "bootstrap").await?;
    let key = SigningKey::generate();
    write_private_key(&settings.bootstrap.key_file, &key)?;
    let record = add_key(store, app_id, KeyRole::App, &key.public_key(), None, "bootstrap").await?;
    let exe = std::env::current_exe().map_or_else(|_| "cardinal".to_owned(), |p| p.display().to_string());
    let command = format!(
        "{exe} token --key {} --kid {} --app {app_id} --identity alice",
        settings.bootstrap.key_file.display(),
        record.kid
    );
    tracing::info!(app = %app_id, kid = %record.kid, key_file = %settings.bootstrap.key_file.display(), "created app {app_id} with an app key");
    tracing::info!("mint a token with: {command}");
    Ok(())
}
