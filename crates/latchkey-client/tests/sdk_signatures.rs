//! What the SDK puts on the wire for each signed call, captured by a local HTTP server and
//! checked here with latchkey-proto's verifier. With `LATCHKEY_SDK_SIGNED_OUT=FILE`, the captured
//! requests are also written to FILE for `interop/sdk-signatures/run.sh`, which verifies them with
//! the official npm package `@interledger/http-signature-utils`.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_client::gnap::Action;
use latchkey_client::interaction::redirect_finish;
use latchkey_client::{access, AuthenticatedClient, ClientConfig, PrivateKey};
use latchkey_proto::digest::verify_content_digest;
use latchkey_proto::httpsig::{parse_signature, RequestParts};
use latchkey_proto::keys::{generate_signing_key, signing_key_to_pkcs8_pem};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
struct Captured {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

async fn capture_server(log: Arc<Mutex<Vec<Captured>>>) -> String {
    let app = axum::Router::new().fallback(move |request: Request| {
        let log = log.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 16)
                .await
                .unwrap_or_default();
            let host = parts
                .headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        v.to_str().expect("ASCII header").to_string(),
                    )
                })
                .collect();
            let path = parts.uri.path().to_string();
            let method = parts.method.to_string();
            log.lock().expect("lock").push(Captured {
                method: method.clone(),
                url: format!("http://{host}{}", parts.uri),
                headers,
                body: (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned()),
            });
            let base = format!("http://{host}");
            let token = json!({
                "value": "OS9M2PMHKUR64TB8N6BW7OZB8CDFONP219RP1LT0",
                "manage": format!("{base}/token/8f69de01"),
                "expires_in": 600,
                "access": [{"type": "incoming-payment", "actions": ["create", "read"]}]
            });
            let cont = json!({
                "access_token": {"value": "33OMUKMKSKU80UPRY5NM"},
                "uri": format!("{base}/continue/4CF492MLVMSW9MKMXKHQ"),
                "wait": 30
            });
            match (method.as_str(), path.as_str()) {
                ("DELETE", _) => StatusCode::NO_CONTENT.into_response(),
                ("POST", p) if p.starts_with("/token/") => {
                    axum::Json(json!({"access_token": token})).into_response()
                }
                _ => axum::Json(json!({"access_token": token, "continue": cont})).into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn every_signed_call_verifies_as_sent() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let base = capture_server(log.clone()).await;
    let key = generate_signing_key();
    let kid = "latchkey-sdk-key-1";
    let client = AuthenticatedClient::new(ClientConfig::new(
        format!("{base}/wallet/alice"),
        PrivateKey::Text(signing_key_to_pkcs8_pem(&key)),
        kid,
    ))
    .expect("client");

    let mut names = Vec::new();
    let request = client.grant_request(vec![access::incoming_payment(
        &[Action::Create, Action::Read],
        None,
    )]);
    client
        .grant()
        .request(&format!("{base}/"), &request)
        .await
        .expect("grant");
    names.push("grant request: POST / with body");
    let interactive = client.interactive_grant_request(
        vec![access::outgoing_payment(
            &[Action::Create],
            &format!("{base}/wallet/alice"),
            None,
        )],
        Some(redirect_finish(
            "https://client.example/return?x=1",
            "nonce-1",
        )),
    );
    client
        .grant()
        .request(&base, &interactive)
        .await
        .expect("grant");
    names.push("interactive grant request: POST / (URL given without slash)");
    let cont = format!("{base}/continue/4CF492MLVMSW9MKMXKHQ");
    client
        .grant()
        .continue_grant(
            &cont,
            Some("33OMUKMKSKU80UPRY5NM"),
            Some("4IFWWIKYBC2PQ6U56NL1"),
        )
        .await
        .expect("continue");
    names.push("grant continue with interact_ref: POST with body and Authorization");
    client
        .grant()
        .continue_grant(&cont, Some("33OMUKMKSKU80UPRY5NM"), None)
        .await
        .expect("poll");
    names.push("grant continue, polling: POST without body, with Authorization");
    let manage = format!("{base}/token/8f69de01");
    client
        .token()
        .rotate(&manage, Some("OS9M2PMHKUR64TB8N6BW7OZB8CDFONP219RP1LT0"))
        .await
        .expect("rotate");
    names.push("token rotate: POST without body, with Authorization");
    client
        .token()
        .revoke(&manage, Some("OS9M2PMHKUR64TB8N6BW7OZB8CDFONP219RP1LT0"))
        .await
        .expect("revoke");
    names.push("token revoke: DELETE with Authorization");
    client
        .grant()
        .cancel(&cont, Some("33OMUKMKSKU80UPRY5NM"))
        .await
        .expect("cancel");
    names.push("grant cancel: DELETE with Authorization");
    client
        .token()
        .revoke(&format!("{manage}?q=a%20b"), Some("tok"))
        .await
        .expect("revoke with a query");
    names.push("token revoke at a URL with a query string");

    let captured = log.lock().expect("lock").clone();
    assert_eq!(captured.len(), names.len());
    let mut cases = Vec::new();
    for (name, c) in names.iter().zip(&captured) {
        let header = |n: &str| {
            c.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        let input = header("signature-input").expect("Signature-Input sent");
        let signature = header("signature").expect("Signature sent");
        // Strict RFC 9421 form: quoted components, label sig1, byte sequence.
        assert!(
            input.starts_with("sig1=(\"@method\" \"@target-uri\""),
            "{name}: {input}"
        );
        assert!(
            input.contains(&format!(";keyid=\"{kid}\";created=")),
            "{name}: {input}"
        );
        assert!(
            signature.starts_with("sig1=:") && signature.ends_with(':'),
            "{name}"
        );
        let parts = RequestParts {
            method: &c.method,
            target_uri: &c.url,
            headers: &c.headers,
        };
        let parsed = parse_signature(&parts, &input, &signature).expect("parses");
        parsed
            .verify(&key.verifying_key())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let has_auth = header("authorization").is_some();
        parsed
            .check_required_components(c.body.is_some(), has_auth)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(body) = &c.body {
            let digest = header("content-digest").expect("Content-Digest with a body");
            verify_content_digest(&digest, body.as_bytes()).expect("digest matches");
            assert_eq!(header("content-type").as_deref(), Some("application/json"));
            assert_eq!(header("content-length"), Some(body.len().to_string()));
        }
        if has_auth {
            assert!(header("authorization").is_some_and(|a| a.starts_with("GNAP ")));
        }
        cases.push(json!({
            "name": name,
            "method": c.method,
            "url": c.url,
            "body": c.body,
            "headers": c.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        }));
    }

    if let Some(out) = std::env::var_os("LATCHKEY_SDK_SIGNED_OUT") {
        let doc: Value = json!({
            "key": {"kid": kid, "jwk": client.public_jwk()},
            "cases": cases,
        });
        std::fs::write(&out, serde_json::to_vec_pretty(&doc).expect("json")).expect("write");
    }
}
