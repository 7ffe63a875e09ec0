//! The log key (a secret like the service key: provisioned, or a 0600 file created on first
//! start) and the configured witnesses.

use anyhow::{Context, bail};
use cardinal_card::SigningKey;
use cardinal_card::tlog::{COSIGNATURE_TYPE, LogKey, VerifierKey};
use ed25519_dalek::pkcs8::DecodePrivateKey;
use secrecy::ExposeSecret;

use super::Witness;
use crate::config::TransparencySettings;
use crate::manage::{read_private_key, write_private_key};

/// The log's signing key: from the settings, from its file, or created on first start. It may
/// not be the card countersigning key (one key, one purpose: a note signature must never be
/// mistaken for a card signature, and either can be rotated alone).
pub fn load_log_key(settings: &TransparencySettings, service_key: &SigningKey) -> anyhow::Result<LogKey> {
    let key = if let Some(secret) = &settings.signing_key {
        SigningKey::from_text(secret.expose_secret())
            .context("transparency.signing_key is not an Ed25519 PKCS#8 key")?
    } else if settings.signing_key_file.exists() {
        read_private_key(&settings.signing_key_file)?
    } else if settings.generate_signing_key {
        let key = SigningKey::generate();
        write_private_key(&settings.signing_key_file, &key)?;
        tracing::info!(path = %settings.signing_key_file.display(), "created the transparency log key");
        key
    } else {
        bail!(
            "the transparency log key {} does not exist and transparency.generate_signing_key is off",
            settings.signing_key_file.display()
        );
    };
    if key.public_key().raw_bytes() == service_key.public_key().raw_bytes() {
        bail!("the transparency log key is the service's countersigning key: give the log a key of its own");
    }
    let der = key.to_pkcs8_der();
    let key = ed25519_dalek::SigningKey::from_pkcs8_der(&der).context("the transparency log key")?;
    Ok(LogKey::new(key))
}

/// The configured witnesses, their keys parsed; the quorum must be reachable.
pub fn witnesses(settings: &TransparencySettings) -> anyhow::Result<Vec<Witness>> {
    let mut witnesses = Vec::new();
    for witness in &settings.witnesses {
        let vkey = VerifierKey::parse(&witness.vkey)
            .with_context(|| format!("transparency.witnesses: the vkey of {} is malformed", witness.name))?;
        if vkey.kind != COSIGNATURE_TYPE || vkey.name != witness.name {
            bail!(
                "transparency.witnesses: {} needs an Ed25519 cosignature/v1 vkey (type 0x04) of its name",
                witness.name
            );
        }
        witnesses.push(Witness { name: witness.name.clone(), url: witness.url.trim_end_matches('/').to_owned(), vkey });
    }
    if settings.witness_quorum > witnesses.len() {
        bail!(
            "transparency.witness_quorum is {} but only {} witnesses are configured",
            settings.witness_quorum,
            witnesses.len()
        );
    }
    Ok(witnesses)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::WitnessSettings;

    fn settings(file: std::path::PathBuf) -> TransparencySettings {
        TransparencySettings {
            enabled: true,
            origin_prefix: "o".into(),
            signing_key_file: file,
            generate_signing_key: true,
            signing_key: None,
            checkpoint_interval_ms: 1000,
            witness_quorum: 0,
            witness_timeout_ms: 5000,
            witnesses: Vec::new(),
        }
    }

    #[test]
    fn a_generated_log_key_is_owner_only_kept_and_never_the_service_key() {
        let dir = tempfile::tempdir().unwrap();
        let service = SigningKey::generate();
        let config = settings(dir.path().join("keys/log-key.pem"));
        let key = load_log_key(&config, &service).unwrap();
        let mode = std::fs::metadata(&config.signing_key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_log_key(&config, &service).unwrap().public(), key.public(), "read back, not replaced");
        let same = settings(dir.path().join("service.pem"));
        std::fs::write(&same.signing_key_file, service.to_pkcs8_pem()).unwrap();
        assert!(load_log_key(&same, &service).is_err(), "the service key is refused as the log key");
        let missing = TransparencySettings { generate_signing_key: false, ..settings(dir.path().join("none.pem")) };
        assert!(load_log_key(&missing, &service).is_err());
    }

    #[test]
    fn witnesses_need_cosignature_vkeys_of_their_name_and_a_reachable_quorum() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let vkey = VerifierKey::new("w1", COSIGNATURE_TYPE, key.verifying_key()).to_string();
        let witness =
            |name: &str, vkey: &str| WitnessSettings { name: name.into(), url: "http://w/".into(), vkey: vkey.into() };
        let mut config = settings("k".into());
        config.witnesses = vec![witness("w1", &vkey)];
        config.witness_quorum = 1;
        assert_eq!(witnesses(&config).unwrap()[0].url, "http://w");
        config.witness_quorum = 2;
        assert!(witnesses(&config).is_err(), "quorum above the witnesses");
        config.witness_quorum = 0;
        config.witnesses = vec![witness("w2", &vkey)];
        assert!(witnesses(&config).is_err(), "a vkey of another name");
        let note_key = VerifierKey::new("w1", cardinal_card::tlog::ED25519_TYPE, key.verifying_key()).to_string();
        config.witnesses = vec![witness("w1", &note_key)];
        assert!(witnesses(&config).is_err(), "a note key is not a cosignature key");
    }
}
