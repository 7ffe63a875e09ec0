//! The two base64 dialects of the wire: standard padded (cards) and URL-safe (JWTs).

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose};

/// Standard alphabet, `=` padding required, non-canonical trailing bits rejected: decoding and
/// re-encoding is then the identity, which keeps stored snapshots byte-exact.
pub fn decode_std(s: &str) -> Option<Vec<u8>> {
    general_purpose::STANDARD.decode(s).ok()
}

/// Standard alphabet with padding, as the Virgil SDKs write it.
pub fn encode_std(bytes: &[u8]) -> String {
    general_purpose::STANDARD.encode(bytes)
}

const URL_SAFE_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe alphabet; JWT writers differ on padding, so both forms are accepted.
pub fn decode_url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_ANY_PADDING.decode(s).ok()
}

/// URL-safe alphabet without padding, as JWTs are written.
pub fn encode_url(bytes: &[u8]) -> String {
    URL_SAFE_ANY_PADDING.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_decoding_rejects_missing_padding_and_non_canonical_bits() {
        assert_eq!(decode_std("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(decode_std("aGk"), None);
        assert_eq!(decode_std("aGl="), None, "trailing bits must be zero");
        assert_eq!(decode_std("a Gk="), None);
    }

    #[test]
    fn url_decoding_accepts_both_paddings() {
        assert_eq!(decode_url("aGk").as_deref(), Some(&b"hi"[..]));
        assert_eq!(decode_url("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(encode_url(b"hi"), "aGk");
    }
}
