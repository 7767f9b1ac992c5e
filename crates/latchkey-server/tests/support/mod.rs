//! Test support: a real server on 127.0.0.1:0 and a signing client that speaks like the official
//! Open Payments clients (RFC 9421 signature, Content-Digest, `Authorization: GNAP`).
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use latchkey_proto::digest::content_digest_sha256;
use latchkey_proto::httpsig::{components_for, sign_request, RequestParts};
use latchkey_server::config::{Config, ConfigLayer};
use latchkey_server::RunningServer;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// A running server with its temp folder.
pub struct TestServer {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// Development-mode settings on ephemeral ports with data in `dir`.
pub fn dev_layer(dir: &std::path::Path) -> ConfigLayer {
    ConfigLayer {
        dev: Some(true),
        listen: Some("127.0.0.1:0".into()),
        private_listen: Some("127.0.0.1:0".into()),
        database: Some(format!("sqlite://{}", dir.join("latchkey.db").display())),
        data_dir: Some(dir.to_string_lossy().into_owned()),
        ..ConfigLayer::default()
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|layer| layer).await
    }

    pub async fn start_with(adjust: impl FnOnce(ConfigLayer) -> ConfigLayer) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::resolve(adjust(dev_layer(dir.path()))).expect("config");
        let server = latchkey_server::start(config).await.expect("server starts");
        TestServer {
            server,
            dir,
            http: reqwest::Client::new(),
        }
    }

    pub fn public(&self, path: &str) -> String {
        format!("{}{path}", self.server.public_url)
    }

    /// A client signing as the sandbox wallet `name` (alice or bob).
    pub fn wallet_client(&self, name: &str) -> Signer {
        let sandbox = self
            .server
            .sandbox
            .as_ref()
            .expect("dev mode has a sandbox");
        let wallet = sandbox.wallet(name).expect("wallet");
        Signer {
            http: self.http.clone(),
            key: wallet.key.clone(),
            key_id: wallet.key_id.clone(),
            wallet_address: sandbox.wallet_url(name),
        }
    }

    pub async fn introspect(&self, token: &str) -> Value {
        self.introspect_body(json!({ "access_token": token })).await
    }

    pub async fn introspect_body(&self, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/", self.server.private_url))
            .json(&body)
            .send()
            .await
            .expect("introspect");
        assert_eq!(response.status(), 200);
        response.json().await.expect("json")
    }
}

/// Signs requests with one key.
#[derive(Clone)]
pub struct Signer {
    pub http: reqwest::Client,
    pub key: SigningKey,
    pub key_id: String,
    pub wallet_address: String,
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// A response read whole.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Signer {
    /// Sends a signed request; `token` goes into `Authorization: GNAP`.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        self.send_raw(
            method,
            url,
            token,
            body.map(|b| b.to_string().into_bytes()),
            now(),
        )
        .await
    }

    pub async fn send_raw(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        created: i64,
    ) -> Reply {
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(token) = token {
            headers.push(("authorization".into(), format!("GNAP {token}")));
        }
        if let Some(body) = &body {
            headers.push(("content-type".into(), "application/json".into()));
            headers.push(("content-length".into(), body.len().to_string()));
            headers.push(("content-digest".into(), content_digest_sha256(body)));
        }
        let parts = RequestParts {
            method,
            target_uri: url,
            headers: &headers,
        };
        let components = components_for(body.is_some(), token.is_some());
        let signed =
            sign_request(&parts, &components, &self.key_id, created, &self.key).expect("sign");
        let mut request = self
            .http
            .request(method.parse().expect("method"), url)
            .header("signature-input", signed.signature_input)
            .header("signature", signed.signature);
        for (name, value) in &headers {
            if name != "content-length" {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    /// Requests a grant for `access` at the server's grant endpoint.
    pub async fn grant(&self, server: &TestServer, access: Value) -> Reply {
        let body = json!({ "access_token": { "access": access }, "client": self.wallet_address });
        self.send("POST", &server.public("/"), None, Some(&body))
            .await
    }
}

/// An incoming-payment access list for `wallet`.
pub fn incoming(wallet: &str) -> Value {
    json!([{ "type": "incoming-payment", "actions": ["create", "read", "list"], "identifier": wallet }])
}

/// Asserts a GNAP error body with `code` and `status`.
pub fn assert_gnap_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "status of {}", reply.text);
    assert_eq!(reply.body["error"]["code"], code, "code of {}", reply.text);
    assert!(
        reply.body["error"]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "description of {}",
        reply.text
    );
}
