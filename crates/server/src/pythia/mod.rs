//! Pythia brainkey: who may ask for a seed, for which key, and how evaluations share the CPU.
//! The cryptography (decoding, validation, derivation, the pairing) is `cardinal-pythia`; the
//! throttling is the route's rate-limit class (`ratelimit::RouteClass::Brainkey`).
//!
//! An evaluation costs about 2 ms of CPU: it runs on a blocking thread, never on a request
//! worker, and at most `max_concurrent_evaluations` run at once, so that a storm of them leaves
//! cores to lookups. A request that cannot get a slot in time is answered 503.

mod secret;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cardinal_pythia::{BlindedPassword, BlindedPasswordError, Scope, Secret, Seed};
use tokio::sync::Semaphore;

use crate::config::PythiaSettings;
use crate::domain::{Caller, KeyRole};
pub use secret::load_secret;

/// Why a brainkey request is refused.
#[derive(Debug, thiserror::Error)]
pub enum PythiaError {
    /// The blinded password is malformed or not a point of G1.
    #[error(transparent)]
    BlindedPassword(#[from] BlindedPasswordError),
    /// `brainkey_id` is longer than allowed.
    #[error("brainkey_id exceeds {max} bytes")]
    BrainkeyIdTooLong {
        /// The limit.
        max: usize,
    },
    /// An admin token: admins have no backups, and one named like a user would guess at theirs.
    #[error("brainkeys are derived for users; use a user (app-role) token")]
    NotAUser,
    /// No evaluation slot freed up in time.
    #[error("too many brainkey evaluations in progress; retry shortly")]
    Busy,
    /// The blocking task died.
    #[error("the evaluation did not complete: {0}")]
    Failed(String),
}

/// What a brainkey request asks for, parsed from the body.
#[derive(Debug, Clone, Copy)]
pub struct BrainkeyRequest<'a> {
    /// `blinded_password`, base64.
    pub blinded_password: &'a str,
    /// `brainkey_id`, if any.
    pub brainkey_id: Option<&'a str>,
}

/// The brainkey service: the secret and the evaluation slots.
pub struct Brainkeys {
    secret: Arc<Secret>,
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
    brainkey_id_max_bytes: usize,
}

/// One evaluation's answer and the CPU time it took.
#[derive(Debug)]
pub struct Evaluated {
    /// The seed.
    pub seed: Seed,
    /// Time spent on the blocking thread.
    pub took: Duration,
}

impl Brainkeys {
    /// The service over `secret`, sized by `settings`.
    pub fn new(secret: Secret, settings: &PythiaSettings) -> Self {
        let slots = match settings.max_concurrent_evaluations {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() / 2).max(1),
            n => n,
        };
        Brainkeys {
            secret: Arc::new(secret),
            slots: Arc::new(Semaphore::new(slots)),
            queue_timeout: Duration::from_millis(settings.queue_timeout_ms.max(1)),
            brainkey_id_max_bytes: settings.brainkey_id_max_bytes,
        }
    }

    /// The seed for the caller's blinded password. Everything cheap is checked before a slot
    /// is taken: a malformed point costs a square root at most.
    pub async fn seed(&self, caller: &Caller, request: BrainkeyRequest<'_>) -> Result<Evaluated, PythiaError> {
        if caller.role != KeyRole::App {
            return Err(PythiaError::NotAUser);
        }
        let brainkey_id = request.brainkey_id.unwrap_or_default();
        if brainkey_id.len() > self.brainkey_id_max_bytes {
            return Err(PythiaError::BrainkeyIdTooLong { max: self.brainkey_id_max_bytes });
        }
        let x = BlindedPassword::from_base64(request.blinded_password)?;
        let permit = tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| PythiaError::Busy)?
            .map_err(|_| PythiaError::Busy)?;
        let secret = self.secret.clone();
        let (app, identity, brainkey_id) =
            (caller.app_id.as_str().to_owned(), caller.subject.as_str().to_owned(), brainkey_id.to_owned());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = Instant::now();
            let key = secret.key_for(&Scope { app: &app, identity: &identity, brainkey_id: &brainkey_id });
            let seed = key.evaluate(&x, &mut rand::rngs::OsRng);
            Evaluated { seed, took: started.elapsed() }
        })
        .await
        .map_err(|e| PythiaError::Failed(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
