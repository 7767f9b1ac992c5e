//! Interaction helpers for interactive grants (outgoing payments): the finish method to put in
//! the grant request, and the check of the `hash` the authorization server appends to the finish
//! redirect (RFC 9635 §4.2.3), which proves the redirect belongs to this grant request.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use latchkey_proto::gnap::InteractFinish;
use sha2::{Digest, Sha256};

/// `{"method":"redirect","uri":finish_uri,"nonce":client_nonce}` for
/// [`AuthenticatedClient::interactive_grant_request`](crate::AuthenticatedClient::interactive_grant_request).
pub fn redirect_finish(finish_uri: &str, client_nonce: &str) -> InteractFinish {
    InteractFinish {
        method: "redirect".to_string(),
        uri: finish_uri.to_string(),
        nonce: client_nonce.to_string(),
    }
}

/// The interaction hash: SHA-256 over `client nonce \n server nonce \n interact_ref \n grant
/// endpoint URL`, standard base64 with padding (what Open Payments servers and clients compute).
///
/// `server_nonce` is `interact.finish` of the grant response; `grant_endpoint` is the URL the
/// grant request was sent to, exactly as the server's wallet address advertises it (with its
/// trailing slash).
pub fn interaction_hash(
    client_nonce: &str,
    server_nonce: &str,
    interact_ref: &str,
    grant_endpoint: &str,
) -> String {
    let input = format!("{client_nonce}\n{server_nonce}\n{interact_ref}\n{grant_endpoint}");
    STANDARD.encode(Sha256::digest(input.as_bytes()))
}

/// Checks the `hash` of a finish redirect in constant time.
pub fn verify_interaction_hash(
    hash: &str,
    client_nonce: &str,
    server_nonce: &str,
    interact_ref: &str,
    grant_endpoint: &str,
) -> bool {
    let expected = interaction_hash(client_nonce, server_nonce, interact_ref, grant_endpoint);
    expected.len() == hash.len()
        && expected
            .bytes()
            .zip(hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_base64_of_the_four_lines() {
        let h = interaction_hash(
            "VJLO6A4CATR0KRO",
            "MBDOFXG4Y5CVJCX821LH",
            "4IFWWIKYBC2PQ6U56NL1",
            "https://server.example.com/tx",
        );
        let expected = STANDARD.encode(Sha256::digest(
            b"VJLO6A4CATR0KRO\nMBDOFXG4Y5CVJCX821LH\n4IFWWIKYBC2PQ6U56NL1\nhttps://server.example.com/tx",
        ));
        assert_eq!(h, expected);
        assert!(h.ends_with('='), "standard base64 with padding");
        assert!(verify_interaction_hash(
            &h,
            "VJLO6A4CATR0KRO",
            "MBDOFXG4Y5CVJCX821LH",
            "4IFWWIKYBC2PQ6U56NL1",
            "https://server.example.com/tx"
        ));
        assert!(!verify_interaction_hash(
            &h,
            "other",
            "MBDOFXG4Y5CVJCX821LH",
            "4IFWWIKYBC2PQ6U56NL1",
            "https://server.example.com/tx"
        ));
        assert!(!verify_interaction_hash("", "a", "b", "c", "d"));
    }
}
