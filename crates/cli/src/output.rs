//! Tables for people, JSON for scripts.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use cardinal_card::ParsedCard;
use cardinal_client::{EventsPage, PublicKey, SigningKey, VerifiedCard};
use serde_json::json;

pub fn write_private_key(path: &Path, key: &SigningKey) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(key.to_pkcs8_pem().as_bytes())?;
    file.sync_all()
}

pub fn keygen(path: &Path, public: &PublicKey, json: bool) {
    if json {
        println!("{}", json!({"private_key_file": path.display().to_string(), "public_key": public.to_spki_base64()}));
    } else {
        println!("private key written to {} (mode 0600)", path.display());
        println!("public key: {}", public.to_spki_base64());
    }
}

fn card_json(card: &VerifiedCard) -> serde_json::Value {
    serde_json::to_value(&card.view).expect("a card view of strings and integers always serialises")
}

fn time(secs: Option<i64>) -> String {
    secs.map_or_else(|| "-".to_owned(), |s| s.to_string())
}

pub fn card(card: &VerifiedCard, json: bool) {
    if json {
        println!("{}", card_json(card));
        return;
    }
    let view = &card.view;
    println!("id:          {}", view.id);
    println!("identity:    {}", view.identity);
    println!("status:      {}", view.status.as_str());
    println!("public key:  {}", view.public_key);
    println!("created at:  {}", view.created_at);
    println!("previous:    {}", view.previous_card_id.as_deref().unwrap_or("-"));
    println!("superseded:  {}", view.superseded_by.as_deref().unwrap_or("-"));
    println!("revoked at:  {}", time(view.revoked_at));
    if let Some(reason) = &view.revocation_reason {
        println!("reason:      {reason}");
    }
}

pub fn lookup(found: &BTreeMap<String, Vec<VerifiedCard>>, json: bool) {
    if json {
        let map: serde_json::Map<String, serde_json::Value> =
            found.iter().map(|(identity, cards)| (identity.clone(), cards.iter().map(card_json).collect())).collect();
        println!("{}", serde_json::Value::Object(map));
        return;
    }
    println!("{:<24} {:<64} {:<10} {:<12} PUBLIC KEY", "IDENTITY", "CARD", "STATUS", "CREATED");
    for (identity, cards) in found {
        if cards.is_empty() {
            println!("{identity:<24} {:<64} {:<10} {:<12} -", "-", "none", "-");
        }
        for card in cards {
            let view = &card.view;
            println!(
                "{identity:<24} {:<64} {:<10} {:<12} {}",
                view.id,
                view.status.as_str(),
                view.created_at,
                view.public_key
            );
        }
    }
}

pub fn events(page: &EventsPage, json: bool, header: bool) {
    if json {
        for event in &page.events {
            println!("{}", serde_json::to_string(event).expect("an event view always serialises"));
        }
        return;
    }
    if header {
        println!("{:<6} {:<14} {:<16} {:<20} {:<64} DETAIL", "SEQ", "AT (ms)", "KIND", "ACTOR", "CARD");
    }
    for view in &page.events {
        let e = &view.event;
        let detail: Vec<String> = e.detail.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<6} {:<14} {:<16} {:<20} {:<64} {}",
            view.seq,
            e.at,
            e.kind.as_str(),
            e.actor,
            e.card_id.as_deref().unwrap_or("-"),
            detail.join(" ")
        );
    }
}

pub fn verified(card: &ParsedCard, countersigned: Option<bool>, json: bool) {
    if json {
        println!(
            "{}",
            json!({"valid": true, "id": card.id.as_str(), "identity": card.content.identity.as_str(), "public_key": card.content.public_key_base64, "countersignature_checked": countersigned.is_some()})
        );
        return;
    }
    println!("valid card {}", card.id);
    println!("identity:    {}", card.content.identity);
    println!("public key:  {}", card.content.public_key_base64);
    match countersigned {
        Some(_) => println!("service countersignature verifies"),
        None => println!("service countersignature not checked (pass --service-key)"),
    }
}
