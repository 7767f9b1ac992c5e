//! RFC 9421 Appendix B.2.6, "Signing a Request Using ed25519", with the key of Appendix B.1.4
//! (`test-key-ed25519`) and the `test-request` message of Appendix B.2.
//!
//! The RFC prints the long lines folded per RFC 8792 ('\' line wrapping); they are unfolded here.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::Signer;
use latchkey_proto::digest::verify_content_digest;
use latchkey_proto::httpsig::{parse_signature, RequestParts, SignatureError};
use latchkey_proto::keys::{load_signing_key, Jwk};

/// B.1.4: "The private key in PKCS #8 format".
const PRIVATE_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
";

/// B.1.4: the public key, `MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=` in SPKI
/// PEM, is this `x` in its JWK form.
const PUBLIC_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";

/// B.2, `test-request`:
///
/// ```text
/// POST /foo?param=Value&Pet=dog HTTP/1.1
/// Host: example.com
/// Date: Tue, 20 Apr 2021 02:07:55 GMT
/// Content-Type: application/json
/// Content-Digest: sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:
/// Content-Length: 18
///
/// {"hello": "world"}
/// ```
const TARGET_URI: &str = "https://example.com/foo?param=Value&Pet=dog";
const BODY: &str = r#"{"hello": "world"}"#;

fn test_request_headers() -> Vec<(String, String)> {
    [
        ("host", "example.com"),
        ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("content-type", "application/json"),
        (
            "content-digest",
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        ),
        ("content-length", "18"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// B.2.6: the Signature-Input field, unfolded.
const SIGNATURE_INPUT: &str = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;

/// B.2.6: the Signature field, unfolded.
const SIGNATURE: &str = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";

/// B.2.6: "The corresponding signature base is:", unfolded.
const SIGNATURE_BASE: &str = r#""date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;

fn public_jwk() -> Jwk {
    serde_json::from_value(serde_json::json!({
        "kid": "test-key-ed25519", "kty": "OKP", "crv": "Ed25519", "x": PUBLIC_X
    }))
    .unwrap()
}

#[test]
fn b26_signature_base_is_rebuilt_byte_for_byte() {
    let headers = test_request_headers();
    let parts = RequestParts {
        method: "POST",
        target_uri: TARGET_URI,
        headers: &headers,
    };
    let parsed = parse_signature(&parts, SIGNATURE_INPUT, SIGNATURE).unwrap();
    assert_eq!(parsed.label(), "sig-b26");
    assert_eq!(parsed.keyid(), "test-key-ed25519");
    assert_eq!(parsed.created(), Some(1618884473));
    assert_eq!(parsed.alg(), None);
    assert_eq!(
        parsed.components(),
        [
            "date",
            "@method",
            "@path",
            "@authority",
            "content-type",
            "content-length"
        ]
    );
    assert!(parsed.components_quoted());
    assert!(!parsed.signature_was_bare());
    assert_eq!(parsed.signature_base(), SIGNATURE_BASE);
}

#[test]
fn b26_signature_verifies_with_the_b14_public_key() {
    let headers = test_request_headers();
    let parts = RequestParts {
        method: "POST",
        target_uri: TARGET_URI,
        headers: &headers,
    };
    let parsed = parse_signature(&parts, SIGNATURE_INPUT, SIGNATURE).unwrap();
    let key = public_jwk().to_verifying_key().unwrap();
    assert_eq!(parsed.verify(&key), Ok(()));
}

#[test]
fn b14_private_key_reproduces_the_b26_signature() {
    // Ed25519 is deterministic: the RFC's key over the RFC's base must give the RFC's bytes.
    let key = load_signing_key(PRIVATE_KEY_PEM).unwrap();
    assert_eq!(
        Jwk::from_verifying_key("test-key-ed25519", &key.verifying_key()).x,
        PUBLIC_X
    );
    let signature = key.sign(SIGNATURE_BASE.as_bytes());
    let expected = STANDARD
        .decode("wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==")
        .unwrap();
    assert_eq!(signature.to_bytes().as_slice(), expected.as_slice());
}

#[test]
fn b2_content_digest_matches_the_body() {
    let headers = test_request_headers();
    let digest = &headers
        .iter()
        .find(|(k, _)| k == "content-digest")
        .unwrap()
        .1;
    assert_eq!(verify_content_digest(digest, BODY.as_bytes()), Ok(()));
}

#[test]
fn b26_tampering_breaks_the_signature() {
    let key = public_jwk().to_verifying_key().unwrap();
    let headers = test_request_headers();

    // Another path.
    let parts = RequestParts {
        method: "POST",
        target_uri: "https://example.com/bar?param=Value&Pet=dog",
        headers: &headers,
    };
    let parsed = parse_signature(&parts, SIGNATURE_INPUT, SIGNATURE).unwrap();
    assert_eq!(parsed.verify(&key), Err(SignatureError::BadSignature));

    // Another method.
    let parts = RequestParts {
        method: "PUT",
        target_uri: TARGET_URI,
        headers: &headers,
    };
    let parsed = parse_signature(&parts, SIGNATURE_INPUT, SIGNATURE).unwrap();
    assert_eq!(parsed.verify(&key), Err(SignatureError::BadSignature));

    // The query is not covered by this signature, so changing it does not matter.
    let parts = RequestParts {
        method: "POST",
        target_uri: "https://example.com/foo?param=other",
        headers: &headers,
    };
    let parsed = parse_signature(&parts, SIGNATURE_INPUT, SIGNATURE).unwrap();
    assert_eq!(parsed.verify(&key), Ok(()));

    // Re-serialising the parameters (keyid before created) changes the signed text.
    let reordered = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");keyid="test-key-ed25519";created=1618884473"#;
    let parts = RequestParts {
        method: "POST",
        target_uri: TARGET_URI,
        headers: &headers,
    };
    let parsed = parse_signature(&parts, reordered, SIGNATURE).unwrap();
    assert_eq!(parsed.verify(&key), Err(SignatureError::BadSignature));

    // A covered header removed.
    let without_date: Vec<_> = headers
        .iter()
        .filter(|(k, _)| k != "date")
        .cloned()
        .collect();
    let parts = RequestParts {
        method: "POST",
        target_uri: TARGET_URI,
        headers: &without_date,
    };
    assert_eq!(
        parse_signature(&parts, SIGNATURE_INPUT, SIGNATURE).unwrap_err(),
        SignatureError::ComponentHeaderAbsent("date".into())
    );
}

#[test]
fn b26_does_not_satisfy_open_payments_requirements() {
    // The RFC example covers neither @target-uri nor content-digest: fine for RFC 9421, not for
    // an Open Payments authorization server.
    let headers = test_request_headers();
    let parts = RequestParts {
        method: "POST",
        target_uri: TARGET_URI,
        headers: &headers,
    };
    let parsed = parse_signature(&parts, SIGNATURE_INPUT, SIGNATURE).unwrap();
    assert_eq!(
        parsed.check_required_components(true, false),
        Err(SignatureError::MissingRequiredComponent(
            "@target-uri".into()
        ))
    );
}
