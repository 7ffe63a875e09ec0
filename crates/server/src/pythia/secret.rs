//! The deployment's Pythia secret: provisioned in the settings, read from its file, or created
//! there on first start (0600, never over an existing file nor through a symlink), like the
//! service key.

use std::path::Path;

use anyhow::{Context, bail};
use cardinal_pythia::Secret;
use secrecy::ExposeSecret;

use crate::config::PythiaSettings;

/// Loads the secret, creating its file if allowed.
pub fn load_secret(settings: &PythiaSettings) -> anyhow::Result<Secret> {
    if let Some(secret) = &settings.secret {
        return Secret::parse(secret.expose_secret()).context("pythia.secret is malformed");
    }
    let path = &settings.secret_file;
    if path.exists() {
        return read_secret(path);
    }
    if !settings.generate_secret {
        bail!("the Pythia secret {} does not exist and pythia.generate_secret is off", path.display());
    }
    let secret = Secret::generate(&mut rand::rngs::OsRng);
    write_secret(path, &secret)?;
    tracing::warn!(
        path = %path.display(),
        "created the Pythia secret: every password backup depends on it; back it up apart from the database"
    );
    Ok(secret)
}

fn read_secret(path: &Path) -> anyhow::Result<Secret> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the Pythia secret is readable by others than its owner");
    }
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?);
    Secret::parse(&text).with_context(|| format!("{} is not a Pythia secret", path.display()))
}

fn write_secret(path: &Path, secret: &Secret) -> anyhow::Result<()> {
    let text = zeroize::Zeroizing::new(format!("{}\n", secret.to_text().as_str()));
    crate::files::write_private_file(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn settings(dir: &Path, generate: bool) -> PythiaSettings {
        PythiaSettings {
            enabled: true,
            secret_file: dir.join("data/pythia-secret"),
            generate_secret: generate,
            secret: None,
            max_concurrent_evaluations: 1,
            queue_timeout_ms: 100,
            brainkey_id_max_bytes: 128,
        }
    }

    #[test]
    fn the_secret_is_created_once_owner_only_and_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path(), true);
        let created = load_secret(&settings).unwrap();
        let mode = std::fs::metadata(&settings.secret_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&settings.secret_file).unwrap();
        assert_eq!(text.trim(), created.to_text().as_str());
        assert_eq!(load_secret(&settings).unwrap().to_text(), created.to_text());
    }

    #[test]
    fn a_missing_secret_is_an_error_when_generation_is_off_and_a_bad_one_always() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = settings(dir.path(), false);
        assert!(load_secret(&settings).is_err());
        assert!(!settings.secret_file.exists());
        settings.secret = Some("not a secret".into());
        let error = format!("{:#}", load_secret(&settings).unwrap_err());
        assert!(!error.contains("not a secret"), "the value is never echoed: {error}");
        settings.secret = None;
        std::fs::create_dir_all(settings.secret_file.parent().unwrap()).unwrap();
        std::fs::write(&settings.secret_file, "cardinal-pythia-v1:short").unwrap();
        assert!(load_secret(&settings).is_err());
    }

    #[test]
    fn a_symlink_in_the_secret_s_place_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path(), true);
        std::fs::create_dir_all(settings.secret_file.parent().unwrap()).unwrap();
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, &settings.secret_file).unwrap();
        assert!(load_secret(&settings).is_err());
        assert!(!target.exists());
    }
}
