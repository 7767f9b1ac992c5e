//! Interoperability with the official Open Payments SDKs, on vectors they produced themselves:
//!
//! * `vectors/node-http-signature-utils.json`: `createHeaders()` of the npm package
//!   `@interledger/http-signature-utils` (regenerate: `interop/vectors/generate.mjs`);
//! * `vectors/rust-sdk-open-payments-0.2.0.json`: `create_signature_headers()` of the crates.io
//!   `open-payments` crate 0.2.0, unquoted-component dialect (regenerate:
//!   `interop/vectors/rust-sdk/run.sh`).
//!
//! The other direction (the npm package verifying what [`sign_request`] produces) is checked by
//! `interop/vectors/run.sh`, which runs [`latchkey_signed_vectors`] with
//! `LATCHKEY_SIGNED_VECTORS_OUT` set and hands the file to `interop/vectors/verify-rust.mjs`.

use latchkey_proto::digest::{content_digest_sha256, verify_content_digest, DigestError};
use latchkey_proto::httpsig::{
    components_for, parse_request_signature, parse_signature, sign_request, ParsedSignature,
    RequestParts, SignatureError,
};
use latchkey_proto::keys::{load_signing_key, Jwk};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Serialize)]
struct VectorFile {
    #[serde(default)]
    description: String,
    key: VectorKey,
    cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct VectorKey {
    kid: String,
    private_key_pem: String,
    jwk: Jwk,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct Case {
    name: String,
    method: String,
    url: String,
    body: Option<String>,
    headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature_base: Option<String>,
}

impl Case {
    fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: &self.method,
            target_uri: &self.url,
            headers: &self.headers,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_header(&mut self, name: &str, value: &str) {
        for (k, v) in &mut self.headers {
            if k.eq_ignore_ascii_case(name) {
                *v = value.to_string();
            }
        }
    }
}

fn node_vectors() -> VectorFile {
    serde_json::from_str(include_str!("vectors/node-http-signature-utils.json")).unwrap()
}

fn rust_sdk_vectors() -> VectorFile {
    serde_json::from_str(include_str!("vectors/rust-sdk-open-payments-0.2.0.json")).unwrap()
}

/// Everything an authorization server does with a received request, short of key lookup.
fn accept(case: &Case, key: &Jwk) -> Result<ParsedSignature, String> {
    let parts = case.parts();
    let parsed = parse_request_signature(&parts).map_err(|e| e.to_string())?;
    if parsed.keyid() != key.kid {
        return Err(format!("keyid {} is not {}", parsed.keyid(), key.kid));
    }
    let verifying_key = key.to_verifying_key().map_err(|e| e.to_string())?;
    parsed.verify(&verifying_key).map_err(|e| e.to_string())?;
    let has_body = case.body.as_deref().is_some_and(|b| !b.is_empty());
    parsed
        .check_required_components(has_body, case.header("authorization").is_some())
        .map_err(|e| e.to_string())?;
    if has_body {
        let digest = case
            .header("content-digest")
            .ok_or("content-digest header missing")?;
        verify_content_digest(digest, case.body.as_deref().unwrap_or_default().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let created = parsed.created().ok_or("no created")?;
    parsed
        .check_created(created + 5, 60)
        .map_err(|e| e.to_string())?;
    Ok(parsed)
}

#[test]
fn node_vectors_are_accepted() {
    let file = node_vectors();
    assert!(file.cases.len() >= 6);
    for case in &file.cases {
        let parsed = accept(case, &file.key.jwk).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(parsed.label(), "sig1", "{}", case.name);
        assert!(parsed.components_quoted(), "{}", case.name);
        assert!(!parsed.signature_was_bare(), "{}", case.name);
        // Byte-for-byte the base http-message-signatures computed and Node verified.
        assert_eq!(
            Some(parsed.signature_base()),
            case.signature_base.as_deref(),
            "{}",
            case.name
        );
        // The Node client covers exactly what components_for() lists.
        let has_body = case.body.is_some();
        let has_auth = case.header("authorization").is_some();
        assert_eq!(
            parsed.components(),
            components_for(has_body, has_auth).as_slice(),
            "{}",
            case.name
        );
    }
}

#[test]
fn node_private_key_loads_and_matches_its_jwk() {
    use base64::Engine;
    let file = node_vectors();
    let key = load_signing_key(&file.key.private_key_pem).unwrap();
    let jwk = Jwk::from_verifying_key(file.key.kid.clone(), &key.verifying_key());
    assert_eq!(jwk, file.key.jwk);
    // The PRIVATE_KEY_BASE_64 form of the same key.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&file.key.private_key_pem);
    assert_eq!(load_signing_key(&b64).unwrap().to_bytes(), key.to_bytes());
}

#[test]
fn sign_request_reproduces_the_node_package_byte_for_byte() {
    // Same key, same request, same `created`: Ed25519 is deterministic, so our strict form must
    // give exactly the headers createHeaders() gave.
    let file = node_vectors();
    let key = load_signing_key(&file.key.private_key_pem).unwrap();
    for case in &file.cases {
        let parsed = parse_request_signature(&case.parts()).unwrap();
        let created = parsed.created().unwrap();
        let components =
            components_for(case.body.is_some(), case.header("authorization").is_some());
        let ours = sign_request(&case.parts(), &components, &file.key.kid, created, &key).unwrap();
        assert_eq!(
            Some(ours.signature_input.as_str()),
            case.header("signature-input"),
            "{}",
            case.name
        );
        assert_eq!(
            Some(ours.signature.as_str()),
            case.header("signature"),
            "{}",
            case.name
        );
    }
}

#[test]
fn tampered_node_requests_are_refused() {
    let file = node_vectors();
    let key = file.key.jwk.clone();
    let with_body = file
        .cases
        .iter()
        .find(|c| c.body.is_some() && c.header("authorization").is_some())
        .unwrap();

    // Body changed, headers untouched: the signature still holds, the digest does not.
    let mut c = with_body.clone();
    c.body = Some(c.body.unwrap().replace("4IFW", "XXXX"));
    let err = accept(&c, &key).unwrap_err();
    assert_eq!(
        err,
        DigestError::Mismatch("sha-512".into()).to_string(),
        "body tamper"
    );

    // Body and digest changed together: the signature covers content-digest.
    let mut c = with_body.clone();
    let body = c.body.clone().unwrap().replace("4IFW", "XXXX");
    let digest = content_digest_sha256(body.as_bytes());
    c.body = Some(body);
    c.set_header("content-digest", &digest);
    assert_eq!(
        accept(&c, &key).unwrap_err(),
        SignatureError::BadSignature.to_string()
    );

    // Method changed.
    let mut c = with_body.clone();
    c.method = "PUT".into();
    assert_eq!(
        accept(&c, &key).unwrap_err(),
        SignatureError::BadSignature.to_string()
    );

    // Target URI changed.
    let mut c = with_body.clone();
    c.url = c.url.replace("/continue/", "/continue/X");
    assert_eq!(
        accept(&c, &key).unwrap_err(),
        SignatureError::BadSignature.to_string()
    );

    // Token swapped.
    let mut c = with_body.clone();
    c.set_header("authorization", "GNAP ANOTHERTOKEN");
    assert_eq!(
        accept(&c, &key).unwrap_err(),
        SignatureError::BadSignature.to_string()
    );

    // Another key.
    let other = Jwk::from_verifying_key(
        key.kid.clone(),
        &latchkey_proto::keys::generate_signing_key().verifying_key(),
    );
    assert_eq!(
        accept(with_body, &other).unwrap_err(),
        SignatureError::BadSignature.to_string()
    );

    // Revoke without a body: authorization dropped from the request but still listed.
    let revoke = file
        .cases
        .iter()
        .find(|c| c.method == "DELETE")
        .unwrap()
        .clone();
    let mut c = revoke.clone();
    c.headers.retain(|(k, _)| k != "authorization");
    assert_eq!(
        accept(&c, &key).unwrap_err(),
        SignatureError::ComponentHeaderAbsent("authorization".into()).to_string()
    );
    // DELETE turned into POST.
    let mut c = revoke;
    c.method = "POST".into();
    assert_eq!(
        accept(&c, &key).unwrap_err(),
        SignatureError::BadSignature.to_string()
    );
}

#[test]
fn rust_sdk_vectors_are_accepted() {
    let file = rust_sdk_vectors();
    assert!(file.cases.len() >= 5);
    for case in &file.cases {
        let parsed = accept(case, &file.key.jwk).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        // The dialect, as produced by the crate itself.
        assert!(!parsed.components_quoted(), "{}", case.name);
        assert!(parsed.signature_was_bare(), "{}", case.name);
        assert_eq!(
            parsed.components()[..3],
            ["@method", "@target-uri", "content-type"]
        );
        // Its base: quoted `"name": value` lines, and the unquoted received parameters text.
        let input = case.header("signature-input").unwrap();
        let params = input.strip_prefix("sig1=").unwrap();
        assert!(params.starts_with("(@method @target-uri content-type"));
        assert!(parsed.signature_base().starts_with(&format!(
            "\"@method\": {}\n\"@target-uri\": {}\n\"content-type\": application/json\n",
            case.method, case.url
        )));
        assert!(parsed
            .signature_base()
            .ends_with(&format!("\n\"@signature-params\": {params}")));
    }
}

#[test]
fn rust_sdk_private_key_loads_and_matches_its_jwk() {
    // ed25519-dalek writes PKCS#8 v2 (with the public key); the SDK's own generator writes CRLF.
    let file = rust_sdk_vectors();
    let key = load_signing_key(&file.key.private_key_pem).unwrap();
    assert_eq!(
        Jwk::from_verifying_key(file.key.kid.clone(), &key.verifying_key()),
        file.key.jwk
    );
    let crlf = file.key.private_key_pem.replace('\n', "\r\n");
    assert_eq!(load_signing_key(&crlf).unwrap().to_bytes(), key.to_bytes());
}

#[test]
fn tampered_rust_sdk_requests_are_refused() {
    let file = rust_sdk_vectors();
    let key = file.key.jwk.clone();
    for case in &file.cases {
        let mut c = case.clone();
        c.method = if c.method == "GET" { "HEAD" } else { "GET" }.into();
        assert_eq!(
            accept(&c, &key).unwrap_err(),
            SignatureError::BadSignature.to_string(),
            "{}",
            case.name
        );
        let mut c = case.clone();
        c.url.push('x');
        assert_eq!(
            accept(&c, &key).unwrap_err(),
            SignatureError::BadSignature.to_string(),
            "{}",
            case.name
        );
        if case.body.is_some() {
            let mut c = case.clone();
            c.body = Some(format!("{} ", c.body.unwrap()));
            assert_eq!(
                accept(&c, &key).unwrap_err(),
                DigestError::Mismatch("sha-512".into()).to_string(),
                "{}",
                case.name
            );
        }
        // Re-serialising the unquoted dialect into strict form breaks it: the server must use
        // the received text.
        let input = case.header("signature-input").unwrap();
        let open = input.find('(').unwrap();
        let close = input.find(')').unwrap();
        let quoted = input[open + 1..close]
            .split(' ')
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(" ");
        let strict = format!("{}({quoted}){}", &input[..open], &input[close + 1..]);
        let parsed =
            parse_signature(&case.parts(), &strict, case.header("signature").unwrap()).unwrap();
        assert_eq!(
            parsed.verify(&key.to_verifying_key().unwrap()),
            Err(SignatureError::BadSignature)
        );
    }
}

/// Requests signed by [`sign_request`] the way Latchkey's client signs them (strict form,
/// `sha-256` Content-Digest, fixed `created`), with the key of the Node vectors. Deterministic.
/// With `LATCHKEY_SIGNED_VECTORS_OUT=path` the vectors are also written there for
/// `interop/vectors/verify-rust.mjs`.
#[test]
fn latchkey_signed_vectors() {
    let node = node_vectors();
    let key = load_signing_key(&node.key.private_key_pem).unwrap();
    let created = 1_700_000_000;
    let mut cases = Vec::new();
    for template in &node.cases {
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(auth) = template.header("authorization") {
            headers.push(("authorization".into(), auth.into()));
        }
        if let Some(body) = &template.body {
            headers.push(("content-type".into(), "application/json".into()));
            headers.push(("content-length".into(), body.len().to_string()));
            headers.push((
                "content-digest".into(),
                content_digest_sha256(body.as_bytes()),
            ));
        }
        let mut case = Case {
            name: template.name.clone(),
            method: template.method.clone(),
            url: template.url.clone(),
            body: template.body.clone(),
            headers,
            signature_base: None,
        };
        let components =
            components_for(case.body.is_some(), case.header("authorization").is_some());
        let signed =
            sign_request(&case.parts(), &components, &node.key.kid, created, &key).unwrap();
        case.headers.push(("signature".into(), signed.signature));
        case.headers
            .push(("signature-input".into(), signed.signature_input));
        let parsed = accept(&case, &node.key.jwk).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        case.signature_base = Some(parsed.signature_base().to_string());
        cases.push(case);
    }
    let file = VectorFile {
        description:
            "Requests signed by latchkey_proto::httpsig::sign_request (tests/httpsig_interop.rs)"
                .into(),
        key: node.key.clone(),
        cases,
    };
    if let Some(path) = std::env::var_os("LATCHKEY_SIGNED_VECTORS_OUT") {
        std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    }
}
