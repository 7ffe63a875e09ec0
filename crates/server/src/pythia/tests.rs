use super::*;
use crate::domain::{AppId, Identity};

fn settings(slots: usize, queue_timeout_ms: u64) -> PythiaSettings {
    PythiaSettings {
        enabled: true,
        secret_file: "unused".into(),
        generate_secret: false,
        secret: None,
        max_concurrent_evaluations: slots,
        queue_timeout_ms,
        brainkey_id_max_bytes: 8,
    }
}

fn caller(identity: &str, role: KeyRole) -> Caller {
    Caller { app_id: AppId::parse("app").unwrap(), subject: Identity::parse(identity).unwrap(), role }
}

/// The generator of G1 in relic's encoding, from the official vectors.
const GENERATOR: &str = "Axfx06cxl9eUJpVjjE+prA/DaIxPl3S5BaFOOj8XG6xYbFXoP/l6Gu/7OvAK2yLGuw==";

fn request(brainkey_id: Option<&str>) -> BrainkeyRequest<'_> {
    BrainkeyRequest { blinded_password: GENERATOR, brainkey_id }
}

#[tokio::test]
async fn a_user_gets_a_stable_seed_of_its_own_and_an_admin_none() {
    let brainkeys = Brainkeys::new(Secret::generate(&mut rand::rngs::OsRng), &settings(1, 1000));
    let alice = brainkeys.seed(&caller("alice", KeyRole::App), request(None)).await.unwrap();
    let again = brainkeys.seed(&caller("alice", KeyRole::App), request(Some(""))).await.unwrap();
    assert_eq!(alice.seed, again.seed, "no brainkey_id and an empty one are the same key");
    let named = brainkeys.seed(&caller("alice", KeyRole::App), request(Some("work"))).await.unwrap();
    assert_ne!(alice.seed, named.seed);
    let bob = brainkeys.seed(&caller("bob", KeyRole::App), request(None)).await.unwrap();
    assert_ne!(alice.seed, bob.seed);
    let admin = brainkeys.seed(&caller("alice", KeyRole::Admin), request(None)).await;
    assert!(matches!(admin, Err(PythiaError::NotAUser)), "{admin:?}");
}

#[tokio::test]
async fn bad_input_is_refused_before_any_evaluation() {
    let brainkeys = Brainkeys::new(Secret::generate(&mut rand::rngs::OsRng), &settings(1, 1000));
    let alice = caller("alice", KeyRole::App);
    let long = brainkeys.seed(&alice, request(Some("123456789"))).await;
    assert!(matches!(long, Err(PythiaError::BrainkeyIdTooLong { max: 8 })), "{long:?}");
    let bad = brainkeys.seed(&alice, BrainkeyRequest { blinded_password: "AA==", brainkey_id: None }).await;
    assert!(matches!(bad, Err(PythiaError::BlindedPassword(BlindedPasswordError::Length(1)))), "{bad:?}");
}

#[tokio::test]
async fn a_request_that_finds_every_slot_taken_past_the_timeout_is_busy() {
    let brainkeys = Brainkeys::new(Secret::generate(&mut rand::rngs::OsRng), &settings(1, 20));
    let held = brainkeys.slots.clone().acquire_owned().await.unwrap();
    let busy = brainkeys.seed(&caller("alice", KeyRole::App), request(None)).await;
    assert!(matches!(busy, Err(PythiaError::Busy)), "{busy:?}");
    drop(held);
    assert!(brainkeys.seed(&caller("alice", KeyRole::App), request(None)).await.is_ok());
}
