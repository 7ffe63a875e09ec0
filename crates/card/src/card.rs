//! RawSignedModel: parsing and validating a submitted card, making and signing one, and the
//! service countersignature.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::b64;
use crate::crypto::{PublicKey, SigningKey};
use crate::error::CardError;
use crate::id::CardId;
use crate::identity::{Identity, MAX_IDENTITY_BYTES};

/// The signer name of the card owner's own signature.
pub const SELF_SIGNER: &str = "self";
/// The signer name reserved for the service's countersignature.
pub const SERVICE_SIGNER: &str = "virgil";
/// The only snapshot version there is.
pub const CARD_VERSION: &str = "5.0";
const MAX_SIGNER_LEN: usize = 1024;

/// A card as it travels: base64 snapshot and signatures.
///
/// Missing fields deserialize as empty so that validation, not the JSON layer, names what is
/// wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawSignedModel {
    /// Base64 of the snapshot bytes, exactly as the signer wrote it.
    #[serde(default)]
    pub content_snapshot: String,
    /// The signatures, the owner's `self` first by convention.
    #[serde(default)]
    pub signatures: Vec<RawSignature>,
}

/// One signature entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawSignature {
    /// Who signed: `self`, `virgil` (the service) or an app-chosen name.
    #[serde(default)]
    pub signer: String,
    /// Base64 of the 83-byte signature.
    #[serde(default)]
    pub signature: String,
    /// Base64 of extra signed bytes; omitted when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// Limits on what a card may hold. The defaults are the service's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatLimits {
    /// Most signature entries per card.
    pub max_signatures: usize,
    /// Most bytes of one extra snapshot.
    pub max_extra_snapshot_bytes: usize,
    /// Fewest bytes of a public key.
    pub min_public_key_bytes: usize,
    /// Most bytes of a public key.
    pub max_public_key_bytes: usize,
    /// Most bytes of an identity.
    pub max_identity_bytes: usize,
    /// Most bytes of the decoded snapshot. An Ed25519 card with the longest identity needs
    /// about 2.3 KB; the bound keeps one card from costing every reader megabytes.
    pub max_snapshot_bytes: usize,
    /// Most bytes of one decoded signature (Virgil's Ed25519 form is 83).
    pub max_signature_bytes: usize,
    /// Most bytes of the whole card as stored (its JSON, countersignature included).
    pub max_card_bytes: usize,
}

impl Default for FormatLimits {
    fn default() -> Self {
        FormatLimits {
            max_signatures: 8,
            max_extra_snapshot_bytes: 1024,
            min_public_key_bytes: 16,
            max_public_key_bytes: 4096,
            max_identity_bytes: MAX_IDENTITY_BYTES,
            max_snapshot_bytes: 4096,
            max_signature_bytes: 512,
            max_card_bytes: 8192,
        }
    }
}

/// The validated fields of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardContent {
    /// Whose card it is.
    pub identity: Identity,
    /// The card this one rotates, if any.
    pub previous_card_id: Option<CardId>,
    /// Unix seconds, as the signer stated it.
    pub created_at: i64,
    /// The public key, base64 of SPKI DER, as written in the snapshot.
    pub public_key_base64: String,
}

/// A card that passed every format rule and whose self signature verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCard {
    /// Derived from the snapshot bytes.
    pub id: CardId,
    /// The decoded snapshot bytes.
    pub snapshot: Vec<u8>,
    /// The snapshot's fields.
    pub content: CardContent,
    /// The card's key.
    pub public_key: PublicKey,
    /// The model as received.
    pub raw: RawSignedModel,
}

/// The fields a snapshot may carry; anything else is refused, so that a card cannot smuggle
/// kilobytes of data that every reader of the identity downloads. Virgil's SDKs write exactly
/// these (extra data goes in a signature's extra snapshot).
const SNAPSHOT_FIELDS: [&str; 5] = ["identity", "previous_card_id", "created_at", "version", "public_key"];

/// Field-by-field view of the snapshot JSON. A derived struct rejects duplicate keys, so a
/// snapshot cannot say two things at once to two different parsers.
#[derive(Deserialize)]
struct SnapshotFields {
    identity: Option<Value>,
    previous_card_id: Option<Value>,
    created_at: Option<Value>,
    version: Option<Value>,
    public_key: Option<Value>,
}

impl ParsedCard {
    /// Validates a card submitted for publication: every format rule, the reserved service
    /// signer refused, the self signature verified.
    pub fn parse(raw: RawSignedModel, limits: &FormatLimits) -> Result<Self, CardError> {
        parse(raw, limits, false)
    }

    /// Validates a card as a directory returns it: like [`ParsedCard::parse`], but the service
    /// countersignature may be present.
    pub fn parse_published(raw: RawSignedModel, limits: &FormatLimits) -> Result<Self, CardError> {
        parse(raw, limits, true)
    }

    /// Whether the service countersignature is present and verifies with `service_key`.
    pub fn has_valid_countersignature(&self, service_key: &PublicKey) -> bool {
        verify_countersignature(&self.raw, &self.snapshot, service_key)
    }
}

fn parse(raw: RawSignedModel, limits: &FormatLimits, allow_service_signer: bool) -> Result<ParsedCard, CardError> {
    if raw.content_snapshot.is_empty() {
        return Err(CardError::SnapshotEmpty);
    }
    // Base64 is 4/3 of the bytes: refuse an oversized snapshot before decoding it.
    if raw.content_snapshot.len() / 4 * 3 > limits.max_snapshot_bytes + 2 {
        return Err(CardError::SnapshotTooLong { max: limits.max_snapshot_bytes });
    }
    let snapshot = b64::decode_std(&raw.content_snapshot).ok_or(CardError::SnapshotNotBase64)?;
    if snapshot.len() > limits.max_snapshot_bytes {
        return Err(CardError::SnapshotTooLong { max: limits.max_snapshot_bytes });
    }
    let content = parse_snapshot(&snapshot, limits)?;
    let public_key = parse_public_key(&content.public_key_base64, limits)?;

    if raw.signatures.is_empty() {
        return Err(CardError::NoSignatures);
    }
    let max_signatures = limits.max_signatures + usize::from(allow_service_signer);
    if raw.signatures.len() > max_signatures {
        return Err(CardError::TooManySignatures { max: limits.max_signatures });
    }
    let mut seen = HashSet::new();
    let mut self_signed: Option<(Vec<u8>, Vec<u8>)> = None;
    for entry in &raw.signatures {
        if entry.signer.is_empty() {
            return Err(CardError::SignerEmpty);
        }
        if entry.signer.chars().count() > MAX_SIGNER_LEN {
            return Err(CardError::SignerTooLong);
        }
        if entry.signer == SERVICE_SIGNER && !allow_service_signer {
            return Err(CardError::ReservedSigner);
        }
        if !seen.insert(entry.signer.as_str()) {
            return Err(CardError::DuplicateSigner(entry.signer.clone()));
        }
        let signature = match b64::decode_std(&entry.signature) {
            Some(sig) if !sig.is_empty() => sig,
            _ => return Err(CardError::SignatureNotBase64(entry.signer.clone())),
        };
        if signature.len() > limits.max_signature_bytes {
            return Err(CardError::SignatureTooLong { signer: entry.signer.clone(), max: limits.max_signature_bytes });
        }
        let extra = match entry.snapshot.as_deref() {
            None | Some("") => Vec::new(),
            Some(text) => {
                b64::decode_std(text).ok_or_else(|| CardError::ExtraSnapshotNotBase64(entry.signer.clone()))?
            }
        };
        if extra.len() > limits.max_extra_snapshot_bytes {
            return Err(CardError::ExtraSnapshotTooLong { max: limits.max_extra_snapshot_bytes });
        }
        if entry.signer == SELF_SIGNER {
            self_signed = Some((signature, extra));
        }
    }
    let (signature, extra) = self_signed.ok_or(CardError::SelfSignatureMissing)?;
    let signed = [snapshot.as_slice(), extra.as_slice()].concat();
    if !public_key.verify_virgil(&signed, &signature) {
        return Err(CardError::BadSignature);
    }
    Ok(ParsedCard { id: CardId::of_snapshot(&snapshot), snapshot, content, public_key, raw })
}

fn parse_snapshot(snapshot: &[u8], limits: &FormatLimits) -> Result<CardContent, CardError> {
    let fields: SnapshotFields =
        serde_json::from_slice(snapshot).map_err(|e| CardError::SnapshotNotJson(e.to_string()))?;
    // The struct above ignores unknown keys (and has already refused duplicates): list them.
    let keys: std::collections::BTreeMap<String, serde::de::IgnoredAny> =
        serde_json::from_slice(snapshot).map_err(|e| CardError::SnapshotNotJson(e.to_string()))?;
    if let Some(unknown) = keys.keys().find(|key| !SNAPSHOT_FIELDS.contains(&key.as_str())) {
        return Err(CardError::UnknownSnapshotField(unknown.clone()));
    }
    let identity = match fields.identity {
        Some(Value::String(s)) => Identity::parse_with_limit(&s, limits.max_identity_bytes)?,
        None => return Err(CardError::IdentityEmpty),
        Some(_) => return Err(CardError::SnapshotNotJson("identity must be a string".into())),
    };
    match fields.version {
        Some(Value::String(v)) if v == CARD_VERSION => {}
        _ => return Err(CardError::InvalidVersion),
    }
    let created_at = match fields.created_at.as_ref().and_then(Value::as_i64) {
        Some(t) if t > 0 => t,
        _ => return Err(CardError::InvalidCreatedAt),
    };
    let public_key_base64 = match fields.public_key {
        Some(Value::String(s)) => s,
        _ => return Err(CardError::PublicKeyNotBase64),
    };
    let previous_card_id = match fields.previous_card_id {
        None => None,
        Some(Value::String(s)) => Some(s.parse::<CardId>().map_err(|_| CardError::InvalidPreviousCardId)?),
        Some(_) => return Err(CardError::InvalidPreviousCardId),
    };
    Ok(CardContent { identity, previous_card_id, created_at, public_key_base64 })
}

fn parse_public_key(text: &str, limits: &FormatLimits) -> Result<PublicKey, CardError> {
    let der = b64::decode_std(text).ok_or(CardError::PublicKeyNotBase64)?;
    if der.len() < limits.min_public_key_bytes {
        return Err(CardError::PublicKeyTooShort { min: limits.min_public_key_bytes });
    }
    if der.len() > limits.max_public_key_bytes {
        return Err(CardError::PublicKeyTooLong { max: limits.max_public_key_bytes });
    }
    let key = PublicKey::from_spki_der(&der)?;
    key.check_strong()?;
    Ok(key)
}

/// Refuses a card whose stored form (`raw`, its JSON with the countersignature) is over the
/// limit. Checked on the bytes that will be served, after countersigning.
pub fn check_card_size(raw: &str, limits: &FormatLimits) -> Result<(), CardError> {
    if raw.len() > limits.max_card_bytes { Err(CardError::CardTooLarge { max: limits.max_card_bytes }) } else { Ok(()) }
}

/// Appends the service countersignature: the service key's signature over the snapshot bytes.
pub fn countersign(raw: &mut RawSignedModel, snapshot: &[u8], service_key: &SigningKey) {
    raw.signatures.push(RawSignature {
        signer: SERVICE_SIGNER.to_owned(),
        signature: b64::encode_std(&service_key.sign_virgil(snapshot)),
        snapshot: None,
    });
}

/// Whether `raw` carries a service countersignature that verifies with `service_key`.
pub fn verify_countersignature(raw: &RawSignedModel, snapshot: &[u8], service_key: &PublicKey) -> bool {
    raw.signatures.iter().any(|entry| {
        entry.signer == SERVICE_SIGNER
            && entry.snapshot.as_deref().is_none_or(str::is_empty)
            && b64::decode_std(&entry.signature).is_some_and(|sig| service_key.verify_virgil(snapshot, &sig))
    })
}

/// The snapshot as the Virgil SDK writes it: compact JSON, keys in this order.
#[derive(Serialize)]
struct SnapshotOut<'a> {
    identity: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_card_id: Option<&'a str>,
    created_at: i64,
    version: &'static str,
    public_key: String,
}

/// Makes and self-signs a card, as a client SDK does.
#[derive(Debug, Clone)]
pub struct CardBuilder<'k> {
    identity: Identity,
    key: &'k SigningKey,
    previous_card_id: Option<CardId>,
    created_at: i64,
    extra: Option<Vec<u8>>,
}

impl<'k> CardBuilder<'k> {
    /// A card for `identity` holding `key`'s public key, created now by the caller's clock.
    pub fn new(identity: Identity, key: &'k SigningKey, created_at: i64) -> Self {
        CardBuilder { identity, key, previous_card_id: None, created_at, extra: None }
    }

    /// Makes the card a rotation of `previous`.
    pub fn previous(mut self, previous: CardId) -> Self {
        self.previous_card_id = Some(previous);
        self
    }

    /// Extra bytes to sign along with the snapshot (Virgil's `extraFields`, as JSON).
    pub fn extra_snapshot(mut self, extra: Vec<u8>) -> Self {
        self.extra = Some(extra);
        self
    }

    /// Writes the snapshot, signs it, and returns the model with its id.
    pub fn build(self) -> (CardId, RawSignedModel) {
        let snapshot = SnapshotOut {
            identity: self.identity.as_str(),
            previous_card_id: self.previous_card_id.as_ref().map(CardId::as_str),
            created_at: self.created_at,
            version: CARD_VERSION,
            public_key: self.key.public_key().to_spki_base64(),
        };
        // A struct of strings and integers always serialises.
        let snapshot = serde_json::to_vec(&snapshot).expect("a struct of strings and integers always serialises");
        let extra = self.extra.unwrap_or_default();
        let signed = [snapshot.as_slice(), extra.as_slice()].concat();
        let entry = RawSignature {
            signer: SELF_SIGNER.to_owned(),
            signature: b64::encode_std(&self.key.sign_virgil(&signed)),
            snapshot: (!extra.is_empty()).then(|| b64::encode_std(&extra)),
        };
        let raw = RawSignedModel { content_snapshot: b64::encode_std(&snapshot), signatures: vec![entry] };
        (CardId::of_snapshot(&snapshot), raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed(&[7u8; 32])
    }

    fn card() -> RawSignedModel {
        CardBuilder::new(Identity::parse("alice").unwrap(), &key(), 1_700_000_000).build().1
    }

    fn with_snapshot(json: &str) -> RawSignedModel {
        let k = key();
        let sig = b64::encode_std(&k.sign_virgil(json.as_bytes()));
        RawSignedModel {
            content_snapshot: b64::encode_std(json.as_bytes()),
            signatures: vec![RawSignature { signer: "self".into(), signature: sig, snapshot: None }],
        }
    }

    fn parse_err(raw: RawSignedModel) -> CardError {
        ParsedCard::parse(raw, &FormatLimits::default()).unwrap_err()
    }

    #[test]
    fn a_built_card_parses_and_its_id_matches() {
        let (id, raw) = CardBuilder::new(Identity::parse("alice").unwrap(), &key(), 1_700_000_000)
            .extra_snapshot(br#"{"k":"v"}"#.to_vec())
            .build();
        let parsed = ParsedCard::parse(raw, &FormatLimits::default()).unwrap();
        assert_eq!(parsed.id, id);
        assert_eq!(parsed.content.identity.as_str(), "alice");
        assert_eq!(parsed.public_key, key().public_key());
    }

    #[test]
    fn every_snapshot_rule_has_its_own_error() {
        let pk = key().public_key().to_spki_base64();
        let cases = [
            ("not json".to_owned(), "json"),
            (format!(r#"{{"created_at":1,"version":"5.0","public_key":"{pk}"}}"#), "identity"),
            (format!(r#"{{"identity":"","created_at":1,"version":"5.0","public_key":"{pk}"}}"#), "identity"),
            (format!(r#"{{"identity":"a","created_at":1,"version":"4.0","public_key":"{pk}"}}"#), "version"),
            (format!(r#"{{"identity":"a","created_at":0,"version":"5.0","public_key":"{pk}"}}"#), "created_at"),
            (format!(r#"{{"identity":"a","created_at":1.5,"version":"5.0","public_key":"{pk}"}}"#), "created_at"),
            (r#"{"identity":"a","created_at":1,"version":"5.0","public_key":"!!"}"#.to_owned(), "key b64"),
            (r#"{"identity":"a","created_at":1,"version":"5.0","public_key":"AAAA"}"#.to_owned(), "key short"),
            (
                format!(
                    r#"{{"identity":"a","created_at":1,"version":"5.0","public_key":"{pk}","previous_card_id":"abc"}}"#
                ),
                "prev",
            ),
            (format!(r#"{{"identity":"a","identity":"b","created_at":1,"version":"5.0","public_key":"{pk}"}}"#), "dup"),
        ];
        let got: Vec<CardError> = cases.iter().map(|(json, _)| parse_err(with_snapshot(json))).collect();
        assert!(matches!(got[0], CardError::SnapshotNotJson(_)));
        assert_eq!(got[1], CardError::IdentityEmpty);
        assert_eq!(got[2], CardError::IdentityEmpty);
        assert_eq!(got[3], CardError::InvalidVersion);
        assert_eq!(got[4], CardError::InvalidCreatedAt);
        assert_eq!(got[5], CardError::InvalidCreatedAt);
        assert_eq!(got[6], CardError::PublicKeyNotBase64);
        assert_eq!(got[7], CardError::PublicKeyTooShort { min: 16 });
        assert_eq!(got[8], CardError::InvalidPreviousCardId);
        assert!(matches!(got[9], CardError::SnapshotNotJson(ref m) if m.contains("duplicate")));
    }

    #[test]
    fn oversized_snapshots_unknown_fields_and_long_signatures_are_refused() {
        let pk = key().public_key().to_spki_base64();
        let padded = format!(
            r#"{{"identity":"a","created_at":1,"version":"5.0","public_key":"{pk}","x":"{}"}}"#,
            "y".repeat(5000)
        );
        assert_eq!(parse_err(with_snapshot(&padded)), CardError::SnapshotTooLong { max: 4096 });
        let unknown = format!(r#"{{"identity":"a","created_at":1,"version":"5.0","public_key":"{pk}","note":"hi"}}"#);
        assert_eq!(parse_err(with_snapshot(&unknown)), CardError::UnknownSnapshotField("note".into()));
        let mut raw = card();
        raw.signatures.push(RawSignature {
            signer: "app".into(),
            signature: b64::encode_std(&[1u8; 513]),
            snapshot: None,
        });
        assert_eq!(parse_err(raw), CardError::SignatureTooLong { signer: "app".into(), max: 512 });
        let limits = FormatLimits::default();
        assert_eq!(check_card_size(&"x".repeat(8192), &limits), Ok(()));
        assert_eq!(check_card_size(&"x".repeat(8193), &limits), Err(CardError::CardTooLarge { max: 8192 }));
    }

    #[test]
    fn weak_card_keys_are_refused() {
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        let spki = b64::encode_std(PublicKey::from_bytes(&identity_point).unwrap().spki_der());
        let snapshot = format!(r#"{{"identity":"a","created_at":1,"version":"5.0","public_key":"{spki}"}}"#);
        assert_eq!(parse_err(with_snapshot(&snapshot)), CardError::WeakKey);
    }

    #[test]
    fn non_ed25519_and_oversized_keys_are_refused() {
        let big = b64::encode_std(&[0u8; 4097]);
        let roomy = FormatLimits { max_snapshot_bytes: 16384, ..FormatLimits::default() };
        let err = ParsedCard::parse(
            with_snapshot(&format!(r#"{{"identity":"a","created_at":1,"version":"5.0","public_key":"{big}"}}"#)),
            &roomy,
        )
        .unwrap_err();
        assert_eq!(err, CardError::PublicKeyTooLong { max: 4096 });
        let p256 = b64::encode_std(&[0x30u8; 91]);
        let err = parse_err(with_snapshot(&format!(
            r#"{{"identity":"a","created_at":1,"version":"5.0","public_key":"{p256}"}}"#
        )));
        assert_eq!(err, CardError::UnsupportedKeyType);
    }

    #[test]
    fn every_signature_rule_has_its_own_error() {
        let mut raw = card();
        raw.content_snapshot.clear();
        assert_eq!(parse_err(raw), CardError::SnapshotEmpty);

        let mut raw = card();
        raw.content_snapshot.insert(0, '*');
        assert_eq!(parse_err(raw), CardError::SnapshotNotBase64);

        let mut raw = card();
        raw.signatures.clear();
        assert_eq!(parse_err(raw), CardError::NoSignatures);

        let mut raw = card();
        for i in 0..8 {
            raw.signatures.push(RawSignature { signer: format!("app{i}"), signature: "AAAA".into(), snapshot: None });
        }
        assert_eq!(parse_err(raw), CardError::TooManySignatures { max: 8 });

        let mut raw = card();
        raw.signatures[0].signer.clear();
        assert_eq!(parse_err(raw), CardError::SignerEmpty);

        let mut raw = card();
        raw.signatures.push(RawSignature { signer: "x".repeat(1025), signature: "AAAA".into(), snapshot: None });
        assert_eq!(parse_err(raw), CardError::SignerTooLong);

        let mut raw = card();
        raw.signatures.push(RawSignature { signer: "virgil".into(), signature: "AAAA".into(), snapshot: None });
        assert_eq!(parse_err(raw), CardError::ReservedSigner);

        let mut raw = card();
        raw.signatures.push(raw.signatures[0].clone());
        assert_eq!(parse_err(raw), CardError::DuplicateSigner("self".into()));

        let mut raw = card();
        raw.signatures[0].signer = "app".into();
        assert_eq!(parse_err(raw), CardError::SelfSignatureMissing);

        let mut raw = card();
        raw.signatures[0].signature = "not base64".into();
        assert_eq!(parse_err(raw), CardError::SignatureNotBase64("self".into()));

        let mut raw = card();
        raw.signatures[0].signature.clear();
        assert_eq!(parse_err(raw), CardError::SignatureNotBase64("self".into()));

        let mut raw = card();
        raw.signatures[0].snapshot = Some("@@".into());
        assert_eq!(parse_err(raw), CardError::ExtraSnapshotNotBase64("self".into()));

        let mut raw = card();
        raw.signatures[0].snapshot = Some(b64::encode_std(&[b'x'; 1025]));
        assert_eq!(parse_err(raw), CardError::ExtraSnapshotTooLong { max: 1024 });

        let mut raw = card();
        raw.signatures[0].snapshot = Some(b64::encode_std(b"{}"));
        assert_eq!(parse_err(raw), CardError::BadSignature, "extra bytes are part of what is signed");

        let mut raw = card();
        raw.signatures[0].signature = b64::encode_std(&SigningKey::generate().sign_virgil(b"x"));
        assert_eq!(parse_err(raw), CardError::BadSignature);
    }

    #[test]
    fn published_cards_may_carry_the_countersignature_and_it_verifies() {
        let service = SigningKey::from_seed(&[9u8; 32]);
        let parsed = ParsedCard::parse(card(), &FormatLimits::default()).unwrap();
        let mut raw = parsed.raw.clone();
        countersign(&mut raw, &parsed.snapshot, &service);
        let published = ParsedCard::parse_published(raw.clone(), &FormatLimits::default()).unwrap();
        assert!(published.has_valid_countersignature(&service.public_key()));
        assert!(!published.has_valid_countersignature(&key().public_key()));
        assert_eq!(parse_err(raw), CardError::ReservedSigner);
    }
}
