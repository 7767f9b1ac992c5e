//! Shared harness of the `oauth_*` integration tests: starts the real server on
//! `127.0.0.1:0` with SQLite in a temporary folder and talks to it over HTTP.

#![allow(dead_code)]

use latchkey_proto::oauth::ClientCredentials;
use latchkey_server::config::{Config, ConfigLayer};
use latchkey_server::RunningServer;
use serde_json::Value;
use std::time::Duration;

/// A running server and an HTTP client for it.
pub struct TestServer {
    /// The server.
    pub server: RunningServer,
    /// Its folder (database).
    pub dir: tempfile::TempDir,
    /// HTTP client (no proxy).
    pub http: reqwest::Client,
    /// `http://127.0.0.1:port` of the public listener.
    pub public: String,
    /// `http://127.0.0.1:port` of the private listener.
    pub private: String,
    /// The database URL.
    pub database: String,
}

/// The admin token the tests configure (when they configure one).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Starts a server; `tweak` adjusts the configuration layer first.
pub async fn start_with(tweak: impl FnOnce(&mut ConfigLayer)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}", dir.path().join("latchkey.db").display());
    let mut layer = ConfigLayer {
        dev: Some(false),
        listen: Some("127.0.0.1:0".into()),
        private_listen: Some("127.0.0.1:0".into()),
        database: Some(database.clone()),
        data_dir: Some(dir.path().display().to_string()),
        ..ConfigLayer::default()
    };
    tweak(&mut layer);
    let config = Config::resolve(layer).expect("config");
    let server = latchkey_server::start(config).await.expect("server starts");
    let public = format!("http://{}", server.public_addr);
    let private = format!("http://{}", server.private_addr);
    TestServer {
        server,
        dir,
        http: client(None),
        public,
        private,
        database,
    }
}

/// Starts a server with the default configuration.
pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// An HTTP client without proxy, optionally bound to a local source address.
pub fn client(local: Option<std::net::IpAddr>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20));
    if let Some(ip) = local {
        builder = builder.local_address(ip);
    }
    builder.build().expect("http client")
}

impl TestServer {
    /// Registers a client through the domain (the CLI and admin API have their own tests).
    pub async fn client(&self, scopes: &[&str]) -> ClientCredentials {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.server
            .state
            .oauth
            .admin()
            .create("test app", &scopes)
            .await
            .expect("client created")
    }

    /// `{public}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public)
    }

    /// POSTs a form body (raw string) to a public path.
    pub async fn post_form(&self, path: &str, body: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    /// POSTs a JSON body to a public path.
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// A token for `creds` through body credentials; panics unless 200.
    pub async fn token(&self, creds: &ClientCredentials) -> Value {
        let r = self
            .post_form(
                "/oauth/token",
                &format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}",
                    creds.client_id, creds.client_secret
                ),
            )
            .await;
        let status = r.status();
        let body: Value = r.json().await.expect("json");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The access token string of a fresh token.
    pub async fn access_token(&self, creds: &ClientCredentials) -> String {
        self.token(creds).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// Revokes `token` as `creds` (RFC 7009, form body); returns the status.
    pub async fn revoke(&self, creds: &ClientCredentials, token: &str) -> u16 {
        self.post_form(
            "/oauth/revoke",
            &format!(
                "client_id={}&client_secret={}&token={token}",
                creds.client_id, creds.client_secret
            ),
        )
        .await
        .status()
        .as_u16()
    }

    /// Introspects `token` as `creds`; returns the JSON body (asserting 200).
    pub async fn introspect(&self, creds: &ClientCredentials, token: &str) -> Value {
        let r = self
            .post_json(
                "/oauth/introspect",
                &serde_json::json!({
                    "client_id": creds.client_id,
                    "client_secret": creds.client_secret,
                    "token": token,
                }),
            )
            .await;
        assert_eq!(r.status(), 200);
        r.json().await.expect("json")
    }

    /// `GET /oauth/token/info` with the bearer token; returns status and body.
    pub async fn info(&self, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url("/oauth/token/info"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.expect("json"))
    }
}

/// Reads a response as (status, headers, JSON body).
pub async fn parts(r: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, headers, body)
}

/// Asserts an RFC 6749 §5.2 error body with this status and code.
pub async fn assert_oauth_error(r: reqwest::Response, status: u16, code: &str) -> Value {
    let (got, headers, body) = parts(r).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "{headers:?}"
    );
    if status == 401 {
        assert!(headers.get("www-authenticate").is_some(), "{headers:?}");
    }
    body
}
