//! What was acknowledged survives a restart, byte for byte.

use cardinal_card::RawSignedModel;
use serde_json::Value;

use crate::helpers::{new_card, rotation_of, spawn_app};
use crate::support::Backend;

async fn every_acknowledged_card_is_byte_identical_after_a_restart(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let mut acknowledged: Vec<Value> = Vec::new();
    for i in 0..10 {
        let identity = format!("user{i}");
        let card = new_card(&identity);
        acknowledged.push(app.published(&identity, &card).await);
        if i % 3 == 0 {
            acknowledged.push(app.published(&identity, &rotation_of(&identity, &card.id)).await);
        }
    }
    let service_key_before = app.service_key().await;
    app.restart().await;
    assert_eq!(app.service_key().await, service_key_before, "the service key persists");
    let token = app.user_token("reader");
    for card in &acknowledged {
        let id = card["id"].as_str().unwrap();
        let response = app.get_card(&token, id).await;
        assert_eq!(response.status(), 200, "{id} is present");
        let stored: Value = response.json().await.unwrap();
        assert_eq!(stored["raw"], card["raw"], "{id} is byte-identical");
        let raw: RawSignedModel = serde_json::from_value(stored["raw"].clone()).unwrap();
        let sent: RawSignedModel = serde_json::from_value(card["raw"].clone()).unwrap();
        assert_eq!(raw.content_snapshot, sent.content_snapshot);
    }
    crate::helpers::assert_event_log_verifies(&app).await;
}

crate::on_both_backends!(every_acknowledged_card_is_byte_identical_after_a_restart);
