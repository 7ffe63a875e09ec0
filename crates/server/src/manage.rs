//! Key files and the first start: the service key, private keys on disk, and the bootstrap app.
//! (The rules for apps and keys themselves are in [`crate::apps`].)

use std::path::Path;

use anyhow::{Context, bail};
use cardinal_card::SigningKey;
use secrecy::ExposeSecret;

use crate::apps::{AppAdmin, AppsError};
use crate::clock::Clock;
use crate::config::{ServiceSettings, Settings};
use crate::domain::KeyRole;
use crate::storage::Store;

/// Writes a new private key readable by its owner only. The file must not exist, and a symlink
/// in its place is refused (O_EXCL, O_NOFOLLOW): a key is never written through a link someone
/// planted, nor over another key.
pub fn write_private_key(path: &Path, key: &SigningKey) -> anyhow::Result<()> {
    crate::files::write_private_file(path, key.to_pkcs8_pem().as_bytes())
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
pub async fn bootstrap(store: &dyn Store, clock: &dyn Clock, settings: &Settings) -> anyhow::Result<()> {
    if !settings.bootstrap.enabled || !store.list_apps().await?.is_empty() {
        return Ok(());
    }
    let app_id = &settings.bootstrap.app_id;
    let admin = AppAdmin::new(store, clock);
    match admin.create_app(app_id, settings.apps.cards_per_identity, "bootstrap").await {
        Ok(_) => {}
        // Instances that start together on a new database all find it empty; one creates the
        // app, and the others leave the first start to it.
        Err(AppsError::AppExists(_)) => {
            tracing::info!(app = %app_id, "another instance bootstrapped this database");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    }
    let key = SigningKey::generate();
    write_private_key(&settings.bootstrap.key_file, &key)?;
    let record = admin.add_key(app_id, KeyRole::App, &key.public_key(), None, "bootstrap").await?;
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
