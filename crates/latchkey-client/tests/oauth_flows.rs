//! `OAuthClient` against a real Latchkey server's `/oauth/*` endpoints (Kopo Kopo style), and
//! its wire format checked against what the Kopo Kopo documentation specifies.

mod common;

use axum::extract::Request;
use axum::response::IntoResponse;
use common::TestServer;
use latchkey_client::oauth_types::OAuthErrorCode;
use latchkey_client::{ClientAuthMethod, ClientError, OAuthClient};
use std::sync::{Arc, Mutex};

async fn register(server: &TestServer, scopes: &[&str]) -> OAuthClient {
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let credentials = server
        .server
        .state
        .oauth
        .admin()
        .create("sdk test app", &scopes)
        .await
        .expect("client registered");
    OAuthClient::new(
        &server.public_url,
        credentials.client_id,
        credentials.client_secret,
    )
    .expect("oauth client")
}

#[tokio::test]
async fn request_introspect_info_revoke_the_kopo_kopo_way() {
    let server = TestServer::start().await;
    let tokens = register(&server, &[]).await;

    let issued = tokens.request_access_token().await.expect("token issued");
    assert_eq!(issued.token_type, "Bearer");
    assert!(issued.expires_in > 0);
    assert!(!issued.access_token.is_empty());

    let info = tokens
        .introspect(&issued.access_token)
        .await
        .expect("introspects");
    assert!(info.active);
    assert_eq!(info.client_id.as_deref(), Some(tokens.client_id()));
    let token_info = tokens
        .token_info(&issued.access_token)
        .await
        .expect("token info");
    assert_eq!(token_info.application.uid, tokens.client_id());
    assert!(token_info.expires_in > 0);

    tokens
        .revoke_access_token(&issued.access_token)
        .await
        .expect("revoked");
    assert!(
        !tokens
            .introspect(&issued.access_token)
            .await
            .expect("introspects")
            .active
    );
    let err = tokens
        .token_info(&issued.access_token)
        .await
        .expect_err("revoked token has no info");
    assert!(err.is_token_inactive(), "{err}");
    assert_eq!(err.oauth_code(), Some(OAuthErrorCode::InvalidToken));
    assert_eq!(err.status(), Some(401));

    // RFC 7009 §2.2: revoking again (or an unknown token) is 200 too.
    tokens
        .revoke_access_token(&issued.access_token)
        .await
        .expect("revoking again is fine");
    tokens
        .revoke_access_token("never-issued")
        .await
        .expect("unknown tokens are fine");
}

#[tokio::test]
async fn basic_authentication_works_the_same() {
    let server = TestServer::start().await;
    let tokens = register(&server, &[])
        .await
        .with_auth_method(ClientAuthMethod::Basic);
    let issued = tokens.request_access_token().await.expect("token issued");
    assert!(
        tokens
            .introspect(&issued.access_token)
            .await
            .expect("introspects")
            .active
    );
    tokens
        .revoke_access_token(&issued.access_token)
        .await
        .expect("revoked");
    assert!(
        !tokens
            .introspect(&issued.access_token)
            .await
            .expect("introspects")
            .active
    );
}

#[tokio::test]
async fn scopes_are_granted_within_the_clients_allowance() {
    let server = TestServer::start().await;
    let tokens = register(&server, &["payments:read", "payments:write"]).await;
    let issued = tokens
        .request_access_token_with_scope(Some("payments:read"))
        .await
        .expect("allowed scope");
    assert_eq!(issued.scope, "payments:read");
    let err = tokens
        .request_access_token_with_scope(Some("admin"))
        .await
        .expect_err("scope beyond the allowance");
    assert_eq!(
        err.oauth_code(),
        Some(OAuthErrorCode::InvalidScope),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_invalid_client() {
    let server = TestServer::start().await;
    let good = register(&server, &[]).await;
    let bad =
        OAuthClient::new(&server.public_url, good.client_id(), "wrong-secret").expect("client");
    let err = bad.request_access_token().await.expect_err("wrong secret");
    assert!(err.is_invalid_client(), "{err}");
    assert_eq!(err.status(), Some(401));
    assert!(err.description().is_some_and(|d| !d.is_empty()));
    let err = bad
        .revoke_access_token("x")
        .await
        .expect_err("wrong secret");
    assert!(err.is_invalid_client(), "{err}");
}

#[tokio::test]
async fn another_clients_token_is_not_revoked() {
    let server = TestServer::start().await;
    let a = register(&server, &[]).await;
    let b = register(&server, &[]).await;
    let token = a.request_access_token().await.expect("issued").access_token;
    b.revoke_access_token(&token)
        .await
        .expect("200 and no effect");
    assert!(a.introspect(&token).await.expect("introspects").active);
    assert!(
        !b.introspect(&token).await.expect("introspects").active,
        "b may not see it"
    );
}

#[tokio::test]
async fn an_unreachable_oauth_server_is_reported_as_such() {
    let port = common::closed_port();
    let tokens =
        OAuthClient::new(&format!("http://127.0.0.1:{port}"), "id", "secret").expect("client");
    let err = tokens
        .request_access_token()
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
}

/// One captured request: method, path, content type, authorization, body.
type Captured = Arc<Mutex<Vec<(String, String, String, String, String)>>>;

async fn capture_server(captured: Captured) -> String {
    let app = axum::Router::new().fallback(move |request: Request| {
        let captured = captured.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 16)
                .await
                .unwrap_or_default();
            let header = |n: &str| {
                parts
                    .headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            captured.lock().expect("lock").push((
                parts.method.to_string(),
                parts.uri.path().to_string(),
                header("content-type"),
                header("authorization"),
                String::from_utf8_lossy(&body).into_owned(),
            ));
            let json = match parts.uri.path() {
                "/oauth/token" => serde_json::json!({
                    "access_token": "tok", "token_type": "Bearer", "expires_in": 3600,
                    "created_at": 1700000000, "scope": ""
                }),
                "/oauth/introspect" => serde_json::json!({"active": false}),
                _ => serde_json::json!({}),
            };
            axum::Json(json).into_response()
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

fn form(body: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn wire_format_matches_the_kopo_kopo_documentation() {
    let captured: Captured = Arc::default();
    let base = capture_server(captured.clone()).await;
    let tokens = OAuthClient::new(&base, "CGQXLrlf", "g7QL&wv=O3").expect("client");
    tokens.request_access_token().await.expect("token");
    tokens
        .revoke_access_token("your_access_token")
        .await
        .expect("revoke");
    tokens
        .introspect("your_access_token")
        .await
        .expect("introspect");
    let basic = tokens.clone().with_auth_method(ClientAuthMethod::Basic);
    basic.revoke_access_token("t2").await.expect("revoke");

    let seen = captured.lock().expect("lock").clone();
    assert_eq!(seen.len(), 4);
    let (method, path, content_type, authorization, body) = &seen[0];
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/oauth/token"));
    assert_eq!(content_type, "application/x-www-form-urlencoded");
    assert!(authorization.is_empty());
    assert_eq!(
        form(body),
        vec![
            ("grant_type".into(), "client_credentials".into()),
            ("client_id".into(), "CGQXLrlf".into()),
            ("client_secret".into(), "g7QL&wv=O3".into()),
        ]
    );
    // "POST https://sandbox.kopokopo.com/oauth/revoke ... client_id=...&client_secret=...&token=..."
    let (method, path, content_type, _, body) = &seen[1];
    assert_eq!((method.as_str(), path.as_str()), ("POST", "/oauth/revoke"));
    assert_eq!(content_type, "application/x-www-form-urlencoded");
    let fields = form(body);
    for (k, v) in [
        ("client_id", "CGQXLrlf"),
        ("client_secret", "g7QL&wv=O3"),
        ("token", "your_access_token"),
    ] {
        assert!(fields.contains(&(k.into(), v.into())), "{k} in {body}");
    }
    assert_eq!(seen[2].1, "/oauth/introspect");
    // HTTP Basic: url-encoded id and secret, nothing secret in the body.
    let (_, _, _, authorization, body) = &seen[3];
    assert!(authorization.starts_with("Basic "), "{authorization}");
    assert_eq!(form(body), vec![("token".into(), "t2".into())]);
}
