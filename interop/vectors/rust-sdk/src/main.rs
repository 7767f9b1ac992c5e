//! Signs the same requests the Node vectors cover with the crates.io `open-payments` 0.2.0 crate,
//! preparing each request exactly as its client does before signing
//! (`src/client/request.rs`, `AuthenticatedRequest::build_and_execute`):
//!
//! * `Content-Type: application/json` on every request, body or not;
//! * `Authorization: GNAP {token}` when a token is used;
//! * with a body, `Content-Length` and `Content-Digest: sha-512=:...:`;
//! * the URI handed to the signer is the `url::Url` string parsed into an `http::Uri`;
//!
//! then calls `open_payments::http_signature::create_signature_headers`, checks the result with
//! the crate's own `validate_signature`, and prints the vectors as JSON on stdout.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use http::{HeaderMap, Method, Request};
use open_payments::http_signature::{
    create_signature_headers, validate_signature, SignOptions, ValidationOptions,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

struct Case {
    name: &'static str,
    method: Method,
    url: &'static str,
    token: Option<&'static str>,
    body: Option<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kid = "rust-sdk-vector-key-1";
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let token = "OS9M2PMHKUR64TB8N6BW7OZB8CDFONP219RP1LT0";
    let grant_body = json!({
        "access_token": {"access": [{"type": "incoming-payment", "actions": ["create", "read"]}]},
        "client": "https://wallet.example.test/alice"
    })
    .to_string();
    let cases = vec![
        Case {
            name: "grant-request: POST with JSON body, no Authorization",
            method: Method::POST,
            url: "https://auth.example.test/",
            token: None,
            body: Some(grant_body),
        },
        Case {
            name: "grant-continue: POST with JSON body and Authorization",
            method: Method::POST,
            url: "https://auth.example.test/continue/4CF492MLVMSW9MKMXKHQ",
            token: Some(token),
            body: Some(json!({"interact_ref": "4IFWWIKYBC2PQ6U56NL1"}).to_string()),
        },
        Case {
            name: "token-rotate: POST without body, with Authorization",
            method: Method::POST,
            url: "https://auth.example.test/token/8f69de01-5bf9-4603-91ed-eeca101081f1",
            token: Some(token),
            body: None,
        },
        Case {
            name: "token-revoke: DELETE with Authorization, no body",
            method: Method::DELETE,
            url: "https://auth.example.test/token/8f69de01-5bf9-4603-91ed-eeca101081f1",
            token: Some(token),
            body: None,
        },
        Case {
            name: "grant-cancel: DELETE with Authorization, no body",
            method: Method::DELETE,
            url: "https://auth.example.test/continue/4CF492MLVMSW9MKMXKHQ",
            token: Some(token),
            body: None,
        },
        Case {
            name: "resource GET with a query string",
            method: Method::GET,
            url: "https://wallet.example.test/incoming-payments?wallet-address=https%3A%2F%2Fwallet.example.test%2Falice&first=10",
            token: Some(token),
            body: None,
        },
    ];

    let mut out = Vec::new();
    for case in cases {
        let url = url::Url::parse(case.url)?;
        let mut req = Request::new(case.body.clone());
        *req.method_mut() = case.method.clone();
        *req.uri_mut() = url.as_str().parse()?;
        let h = req.headers_mut();
        h.insert("Content-Type", "application/json".parse()?);
        if let Some(t) = case.token {
            h.insert("Authorization", format!("GNAP {t}").parse()?);
        }
        if let Some(body) = &case.body {
            h.insert("Content-Length", body.len().to_string().parse()?);
            let digest = STANDARD.encode(Sha512::digest(body.as_bytes()));
            h.insert("Content-Digest", format!("sha-512=:{digest}:").parse()?);
        }
        let signed = create_signature_headers(SignOptions::new(&req, &key, kid.to_string()))?;

        let mut received = HeaderMap::new();
        received.insert("Signature", signed.signature.parse()?);
        received.insert("Signature-Input", signed.signature_input.parse()?);
        validate_signature(ValidationOptions::new(
            &req,
            &received,
            &key.verifying_key(),
        ))?;

        let mut headers: Vec<Value> = req
            .headers()
            .iter()
            .map(|(k, v)| json!([k.as_str(), v.to_str().unwrap_or_default()]))
            .collect();
        headers.push(json!(["signature", signed.signature]));
        headers.push(json!(["signature-input", signed.signature_input]));
        out.push(json!({
            "name": case.name,
            "method": case.method.as_str(),
            "url": req.uri().to_string(),
            "body": case.body,
            "headers": headers,
        }));
    }

    let doc = json!({
        "description": "Requests signed with create_signature_headers() of the crates.io open-payments crate, prepared as its client prepares them; regenerate with interop/vectors/rust-sdk/run.sh",
        "crate": "open-payments",
        "version": "0.2.0",
        "key": {
            "kid": kid,
            "private_key_pem": key.to_pkcs8_pem(LineEnding::LF)?.to_string(),
            "jwk": {
                "kid": kid,
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
                "alg": "EdDSA"
            }
        },
        "cases": out,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
