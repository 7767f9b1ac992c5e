//! `Content-Digest` (RFC 9530): create and check the digest of a request body.
//!
//! The Node Open Payments client sends `sha-512`, and so does the Rust `open-payments` crate;
//! RFC 9421's examples use `sha-512` and RFC 9530's use `sha-256`. Both are accepted here, and
//! Latchkey's own client sends `sha-256`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256, Sha512};
use thiserror::Error;

use crate::httpsig::sf::{self, BareItem, MemberValue};

/// Why a `Content-Digest` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    /// The header is not a Structured Fields dictionary of byte sequences.
    #[error("malformed Content-Digest header: {0}")]
    Malformed(String),
    /// No algorithm this server supports (`sha-256`, `sha-512`) is in the header.
    #[error("Content-Digest names no supported algorithm (use sha-256 or sha-512); got: {0}")]
    UnsupportedAlgorithm(String),
    /// A supported algorithm's digest does not match the body.
    #[error("Content-Digest {0} does not match the request body")]
    Mismatch(String),
}

/// The `Content-Digest` value of `body` with SHA-256: `sha-256=:BASE64:`.
///
/// RFC 9530 §2: "The Content-Digest HTTP field can be used in requests and responses to
/// communicate digests that are calculated using a hashing algorithm applied to the actual
/// message content." The value is a Dictionary whose keys are algorithm names and whose values
/// are Byte Sequences.
pub fn content_digest_sha256(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// The `Content-Digest` value of `body` with SHA-512: `sha-512=:BASE64:` (what the official
/// Open Payments clients send).
pub fn content_digest_sha512(body: &[u8]) -> String {
    format!("sha-512=:{}:", STANDARD.encode(Sha512::digest(body)))
}

/// Checks a received `Content-Digest` header against the raw request body.
///
/// At least one supported algorithm (`sha-256`, `sha-512`) must be present, and every supported
/// algorithm present must match; unknown algorithms are ignored, as RFC 9530 §2 allows:
/// "A recipient MAY ignore any or all digests. Application-specific behavior or local policy MAY
/// set additional constraints on the processing and validation practices of the conveyed
/// digests." Algorithm names are matched case-insensitively.
pub fn verify_content_digest(header_value: &str, body: &[u8]) -> Result<(), DigestError> {
    let members = sf::parse_dictionary(header_value.trim())
        .map_err(|e| DigestError::Malformed(e.to_string()))?;
    if members.is_empty() {
        return Err(DigestError::Malformed("the header is empty".into()));
    }
    let mut checked = 0usize;
    let mut seen = Vec::new();
    for member in &members {
        let received = match &member.value {
            MemberValue::Item(BareItem::Bytes(bytes)) => bytes,
            _ => {
                return Err(DigestError::Malformed(format!(
                    "the value of '{}' is not a byte sequence (:base64:)",
                    member.key
                )))
            }
        };
        let alg = member.key.to_ascii_lowercase();
        let expected: Vec<u8> = match alg.as_str() {
            "sha-256" => Sha256::digest(body).to_vec(),
            "sha-512" => Sha512::digest(body).to_vec(),
            _ => {
                seen.push(member.key.clone());
                continue;
            }
        };
        if !constant_time_eq(&expected, received) {
            return Err(DigestError::Mismatch(alg));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(DigestError::UnsupportedAlgorithm(seen.join(", ")));
    }
    Ok(())
}

/// Compares two byte strings without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 9530 Appendix B.1 and RFC 9421 Appendix B.2 use this body.
    const BODY: &[u8] = br#"{"hello": "world"}"#;
    const SHA256: &str = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";
    const SHA512: &str = "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:";

    #[test]
    fn sha256_value_matches_rfc() {
        assert_eq!(content_digest_sha256(BODY), SHA256);
        assert_eq!(content_digest_sha512(BODY), SHA512);
    }

    #[test]
    fn sha256_match_and_mismatch() {
        assert_eq!(verify_content_digest(SHA256, BODY), Ok(()));
        assert_eq!(
            verify_content_digest(SHA256, br#"{"hello": "World"}"#),
            Err(DigestError::Mismatch("sha-256".into()))
        );
    }

    #[test]
    fn sha512_match_and_mismatch() {
        assert_eq!(verify_content_digest(SHA512, BODY), Ok(()));
        assert_eq!(
            verify_content_digest(SHA512, b""),
            Err(DigestError::Mismatch("sha-512".into()))
        );
    }

    #[test]
    fn both_must_match_when_both_present() {
        let both = format!("{SHA256}, {SHA512}");
        assert_eq!(verify_content_digest(&both, BODY), Ok(()));
        let bad512 = format!("{SHA256}, {}", content_digest_sha512(b"other"));
        assert_eq!(
            verify_content_digest(&bad512, BODY),
            Err(DigestError::Mismatch("sha-512".into()))
        );
    }

    #[test]
    fn unknown_algorithms_are_ignored_but_not_enough() {
        let with_md5 = format!("md5=:AAAAAAAAAAAAAAAAAAAAAA==:, {SHA256}");
        assert_eq!(verify_content_digest(&with_md5, BODY), Ok(()));
        assert!(matches!(
            verify_content_digest("md5=:AAAAAAAAAAAAAAAAAAAAAA==:", BODY),
            Err(DigestError::UnsupportedAlgorithm(a)) if a == "md5"
        ));
    }

    #[test]
    fn algorithm_names_are_case_insensitive() {
        let upper = SHA256.replace("sha-256", "SHA-256");
        assert_eq!(verify_content_digest(&upper, BODY), Ok(()));
    }

    #[test]
    fn malformed_values() {
        for bad in [
            "",
            "sha-256",
            "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
            "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
            "sha-256=:not base64!:",
            "sha-256=\"X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=\"",
            "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
        ] {
            assert!(
                matches!(
                    verify_content_digest(bad, BODY),
                    Err(DigestError::Malformed(_))
                ),
                "{bad:?} should be malformed"
            );
        }
    }

    #[test]
    fn error_messages_are_clear() {
        assert_eq!(
            DigestError::Mismatch("sha-256".into()).to_string(),
            "Content-Digest sha-256 does not match the request body"
        );
    }
}
