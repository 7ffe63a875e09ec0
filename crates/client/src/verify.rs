//! Checking every card the server returns, before the caller sees it.

use cardinal_card::wire::CardView;
use cardinal_card::{FormatLimits, ParsedCard, PublicKey};

use crate::error::ClientError;

/// A card that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedCard {
    /// The server's view: status, rotation and revocation.
    pub view: CardView,
    /// The parsed card: id, identity and key proven by the snapshot and its signatures.
    pub card: ParsedCard,
}

fn fail(what: impl Into<String>) -> ClientError {
    ClientError::Verification(what.into())
}

/// Verifies one card: its id is the hash of its snapshot, its self signature verifies with the
/// snapshot's key, the service countersignature verifies with `service_key`, and the server's
/// summary fields agree with the signed snapshot.
pub fn verify_card(view: CardView, service_key: &PublicKey) -> Result<VerifiedCard, ClientError> {
    let card = ParsedCard::parse_published(view.raw.clone(), &FormatLimits::default())
        .map_err(|e| fail(format!("card {}: {e}", view.id)))?;
    if card.id.as_str() != view.id {
        return Err(fail(format!("card {} has the snapshot of card {}", view.id, card.id)));
    }
    if card.content.identity.as_str() != view.identity {
        return Err(fail(format!(
            "card {} claims identity {:?} but its snapshot says {:?}",
            view.id,
            view.identity,
            card.content.identity.as_str()
        )));
    }
    if card.content.public_key_base64 != view.public_key {
        return Err(fail(format!("card {} claims a public key its snapshot does not hold", view.id)));
    }
    if card.content.previous_card_id.as_ref().map(|id| id.as_str()) != view.previous_card_id.as_deref() {
        return Err(fail(format!("card {} misstates its previous card", view.id)));
    }
    if !card.has_valid_countersignature(service_key) {
        return Err(fail(format!("card {} lacks a valid service countersignature", view.id)));
    }
    Ok(VerifiedCard { view, card })
}
