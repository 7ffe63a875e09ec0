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

/// Unix seconds as UTC RFC 3339, for people; JSON output keeps the numbers.
pub(crate) fn time(secs: Option<i64>) -> String {
    secs.map_or_else(
        || "-".to_owned(),
        |s| {
            chrono::DateTime::from_timestamp(s, 0)
                .map_or_else(|| s.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        },
    )
}

/// Unix milliseconds as UTC RFC 3339 with milliseconds.
fn time_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A span of seconds the way people say it: `1h 5m`, `3m 20s`, `12s`.
pub(crate) fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (days, hours, minutes, seconds) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
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
    println!("created at:  {}", time(Some(view.created_at)));
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
    println!("{:<24} {:<64} {:<10} {:<20} PUBLIC KEY", "IDENTITY", "CARD", "STATUS", "CREATED");
    for (identity, cards) in found {
        if cards.is_empty() {
            println!("{identity:<24} {:<64} {:<10} {:<20} -", "-", "none", "-");
        }
        for card in cards {
            let view = &card.view;
            println!(
                "{identity:<24} {:<64} {:<10} {:<20} {}",
                view.id,
                view.status.as_str(),
                time(Some(view.created_at)),
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
        println!("{:<6} {:<24} {:<16} {:<20} {:<64} DETAIL", "SEQ", "AT", "KIND", "ACTOR", "CARD");
    }
    for view in &page.events {
        let e = &view.event;
        let detail: Vec<String> = e.detail.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<6} {:<24} {:<16} {:<20} {:<64} {}",
            view.seq,
            time_ms(e.at),
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
