//! OAuth 2.0 endpoints over HTTP against the real server: `client_credentials` (RFC 6749
//! §4.4), revocation (RFC 7009), introspection (RFC 7662), token info (Doorkeeper shape).

mod oauth_support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use latchkey_server::oauth::OAuthClient;
use latchkey_server::store::open_stores;
use oauth_support::{assert_oauth_error, parts, start, start_with};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

#[tokio::test]
async fn token_with_body_credentials_has_the_rfc_6749_shape() {
    let t = start().await;
    let creds = t.client(&["read", "write"]).await;
    let r = t
        .post_form(
            "/oauth/token",
            &format!(
                "client_id={}&client_secret={}&grant_type=client_credentials",
                creds.client_id, creds.client_secret
            ),
        )
        .await;
    let (status, headers, body) = parts(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
    assert!(headers["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("application/json"));
    let token = body["access_token"].as_str().expect("token");
    assert!(token.len() >= 43, "256-bit token");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read write");
    let created = body["created_at"].as_i64().expect("created_at");
    assert!((created - now_secs()).abs() <= 5);
    assert!(body.get("refresh_token").is_none(), "RFC 6749 §4.4.3");
    assert_eq!(body.as_object().expect("object").len(), 5, "{body}");
}

#[tokio::test]
async fn token_accepts_charset_form_json_and_no_content_type() {
    let t = start().await;
    let creds = t.client(&[]).await;
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        creds.client_id, creds.client_secret
    );
    for ct in [
        "application/x-www-form-urlencoded;charset=UTF-8",
        "application/x-www-form-urlencoded; charset=utf-8",
        "APPLICATION/X-WWW-FORM-URLENCODED",
    ] {
        let r = t
            .http
            .post(t.url("/oauth/token"))
            .header("content-type", ct)
            .body(form.clone())
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{ct}");
    }
    let r = t
        .post_json(
            "/oauth/token",
            &json!({"grant_type": "client_credentials", "client_id": creds.client_id,
                    "client_secret": creds.client_secret}),
        )
        .await;
    let (status, _, body) = parts(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "");
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .body(form.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "no content type: form sniffed");
}

#[tokio::test]
async fn token_with_http_basic_raw_and_url_encoded() {
    let t = start().await;
    let creds = t.client(&[]).await;
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header(
            "authorization",
            basic(&creds.client_id, &creds.client_secret),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);

    // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64. A client registered
    // with characters that change under that encoding proves the server decodes them.
    let stores = open_stores(&t.database).await.expect("stores");
    let (mut odd, _) = OAuthClient::generate("odd".into(), vec![], 0);
    odd.id = "my+client id".into();
    odd.secret_hash = latchkey_server::token_format::TokenHash::of_secret("s3cr/et=+%:x");
    stores.oauth.insert_client(&odd).await.expect("insert");
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header(
            "authorization",
            basic("my%2Bclient+id", "s3cr%2Fet%3D%2B%25%3Ax"),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("request");
    let (status, _, body) = parts(r).await;
    assert_eq!(status, 200, "{body}");
    // The same client in the body, form-encoded once by the form itself.
    let r = t
        .post_form(
            "/oauth/token",
            "grant_type=client_credentials&client_id=my%2Bclient+id&client_secret=s3cr%2Fet%3D%2B%25%3Ax",
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn scope_is_limited_to_the_clients_scopes() {
    let t = start().await;
    let creds = t.client(&["read", "write"]).await;
    let auth = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        creds.client_id, creds.client_secret
    );
    let r = t
        .post_form("/oauth/token", &format!("{auth}&scope=read"))
        .await;
    let (status, _, body) = parts(r).await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "read");
    let token = body["access_token"].as_str().expect("token").to_string();
    assert_eq!(t.introspect(&creds, &token).await["scope"], "read");
    assert_eq!(t.info(&token).await.1["scope"], json!(["read"]));

    let r = t
        .post_form("/oauth/token", &format!("{auth}&scope=write+read"))
        .await;
    assert_eq!(parts(r).await.2["scope"], "write read");

    let r = t.post_form("/oauth/token", &format!("{auth}&scope=")).await;
    assert_eq!(parts(r).await.2["scope"], "read write", "empty = omitted");

    let r = t
        .post_form("/oauth/token", &format!("{auth}&scope=read+admin"))
        .await;
    let body = assert_oauth_error(r, 400, "invalid_scope").await;
    assert!(body["error_description"]
        .as_str()
        .expect("d")
        .contains("admin"));
    let r = t
        .post_form("/oauth/token", &format!("{auth}&scope=re%22ad"))
        .await;
    assert_oauth_error(r, 400, "invalid_scope").await;

    let none = t.client(&[]).await;
    let r = t
        .post_form(
            "/oauth/token",
            &format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&scope=read",
                none.client_id, none.client_secret
            ),
        )
        .await;
    assert_oauth_error(r, 400, "invalid_scope").await;
}

#[tokio::test]
async fn token_request_errors() {
    let t = start().await;
    let creds = t.client(&[]).await;
    let ok_auth = format!(
        "client_id={}&client_secret={}",
        creds.client_id, creds.client_secret
    );

    let r = t.post_form("/oauth/token", &ok_auth).await;
    assert_oauth_error(r, 400, "invalid_request").await;
    let r = t
        .post_form("/oauth/token", &format!("{ok_auth}&grant_type="))
        .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    let r = t
        .post_form("/oauth/token", &format!("{ok_auth}&grant_type=password"))
        .await;
    assert_oauth_error(r, 400, "unsupported_grant_type").await;
    let r = t
        .post_form(
            "/oauth/token",
            &format!("{ok_auth}&grant_type=client_credentials&grant_type=client_credentials"),
        )
        .await;
    assert_oauth_error(r, 400, "invalid_request").await;

    // No credentials, unknown client, wrong secret, id without secret: 401 invalid_client
    // with a Basic challenge (RFC 6749 §5.2).
    let r = t
        .post_form("/oauth/token", "grant_type=client_credentials")
        .await;
    let www = r.headers()["www-authenticate"]
        .to_str()
        .expect("h")
        .to_string();
    assert!(www.starts_with("Basic "), "{www}");
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = t
        .post_form(
            "/oauth/token",
            "grant_type=client_credentials&client_id=nobody&client_secret=x",
        )
        .await;
    let unknown = assert_oauth_error(r, 401, "invalid_client").await;
    // A client id no database row could hold (a NUL byte, which PostgreSQL refuses in text):
    // the same answer as an unknown client, not a storage error.
    let r = t
        .post_form(
            "/oauth/token",
            "grant_type=client_credentials&client_id=no%00body&client_secret=x",
        )
        .await;
    assert_eq!(assert_oauth_error(r, 401, "invalid_client").await, unknown);
    let r = t
        .post_form(
            "/oauth/token",
            &format!(
                "grant_type=client_credentials&client_id={}&client_secret=wrong",
                creds.client_id
            ),
        )
        .await;
    let wrong = assert_oauth_error(r, 401, "invalid_client").await;
    assert_eq!(
        unknown, wrong,
        "unknown ids and wrong secrets look the same"
    );
    let r = t
        .post_form(
            "/oauth/token",
            &format!(
                "grant_type=client_credentials&client_id={}",
                creds.client_id
            ),
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header("authorization", "Basic !!!not-base64")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header("authorization", basic(&creds.client_id, "wrong"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 401, "invalid_client").await;

    // RFC 6749 §2.3.1: one authentication method per request.
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header(
            "authorization",
            basic(&creds.client_id, &creds.client_secret),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=client_credentials&{ok_auth}"))
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 400, "invalid_request").await;

    // Garbage bodies.
    let json_post = |body: &'static str| {
        t.http
            .post(t.url("/oauth/token"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for garbage in ["{not json", "[1,2]", "\"x\"", "{\"grant_type\": 5}"] {
        let r = json_post(garbage).await.expect("request");
        assert_oauth_error(r, 400, "invalid_request").await;
    }
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'=', 0x00])
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 400, "invalid_request").await;
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header("content-type", "text/xml")
        .body("<grant/>")
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 415, "invalid_request").await;
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&pad={}",
            "x".repeat(70_000)
        ))
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 413, "invalid_request").await;

    // Wrong method and unknown OAuth path keep the OAuth shape.
    let r = t
        .http
        .get(t.url("/oauth/token"))
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 405, "invalid_request").await;
    let r = t
        .http
        .post(t.url("/oauth/authorize"))
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 404, "invalid_request").await;

    // The server kept serving.
    t.token(&creds).await;
}

#[tokio::test]
async fn revoke_form_and_json_answer_200_empty_object_and_kill_the_token() {
    let t = start().await;
    let creds = t.client(&[]).await;

    // Form (k2-connect Python).
    let token = t.access_token(&creds).await;
    let r = t
        .post_form(
            "/oauth/revoke",
            &format!(
                "client_id={}&client_secret={}&token={token}",
                creds.client_id, creds.client_secret
            ),
        )
        .await;
    let (status, headers, body) = parts(r).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({}));
    assert!(headers["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("application/json"));
    // Visible to introspection and token info at once.
    assert_eq!(t.introspect(&creds, &token).await, json!({"active": false}));
    let (status, body) = t.info(&token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );

    // Revoking again, or an unknown token: still 200 {} (RFC 7009 §2.2).
    for tok in [token.as_str(), "no-such-token"] {
        let r = t
            .post_form(
                "/oauth/revoke",
                &format!(
                    "client_id={}&client_secret={}&token={tok}",
                    creds.client_id, creds.client_secret
                ),
            )
            .await;
        assert_eq!(parts(r).await.2, json!({}));
    }

    // JSON with `Authorization: Bearer null` beside the body credentials (k2-connect-node).
    let token = t.access_token(&creds).await;
    let r = t
        .http
        .post(t.url("/oauth/revoke"))
        .header("authorization", "Bearer null")
        .json(
            &json!({"client_id": creds.client_id, "client_secret": creds.client_secret,
                      "token": token}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(parts(r).await.2, json!({}));
    assert_eq!(t.introspect(&creds, &token).await["active"], false);

    // HTTP Basic with token_type_hint (Authlib); any hint value is accepted.
    for hint in ["access_token", "refresh_token", "made_up"] {
        let token = t.access_token(&creds).await;
        let r = t
            .http
            .post(t.url("/oauth/revoke"))
            .header(
                "authorization",
                basic(&creds.client_id, &creds.client_secret),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&token_type_hint={hint}"))
            .send()
            .await
            .expect("request");
        assert_eq!(parts(r).await.0, 200, "{hint}");
        assert_eq!(
            t.introspect(&creds, &token).await["active"],
            false,
            "{hint}"
        );
    }
}

#[tokio::test]
async fn revoke_refuses_bad_callers_and_spares_other_clients_tokens() {
    let t = start().await;
    let owner = t.client(&[]).await;
    let other = t.client(&[]).await;
    let token = t.access_token(&owner).await;

    // Another client: 200 {} and no effect.
    let r = t
        .post_form(
            "/oauth/revoke",
            &format!(
                "client_id={}&client_secret={}&token={token}",
                other.client_id, other.client_secret
            ),
        )
        .await;
    assert_eq!(parts(r).await.2, json!({}));
    assert_eq!(t.introspect(&owner, &token).await["active"], true);

    // Wrong secret, no credentials, Bearer only: 401; missing token: 400.
    let r = t
        .post_form(
            "/oauth/revoke",
            &format!(
                "client_id={}&client_secret=nope&token={token}",
                owner.client_id
            ),
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = t
        .post_form("/oauth/revoke", &format!("token={token}"))
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = t
        .http
        .post(t.url("/oauth/revoke"))
        .bearer_auth(&token)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = t
        .post_form(
            "/oauth/revoke",
            &format!(
                "client_id={}&client_secret={}",
                owner.client_id, owner.client_secret
            ),
        )
        .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    let r = t
        .http
        .post(t.url("/oauth/revoke"))
        .header("content-type", "application/json")
        .body("{\"token\":")
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 400, "invalid_request").await;
    let r = t
        .http
        .get(t.url("/oauth/revoke"))
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 405, "invalid_request").await;

    assert_eq!(
        t.introspect(&owner, &token).await["active"],
        true,
        "survived"
    );
}

#[tokio::test]
async fn introspection_has_numeric_times_and_hides_other_clients_tokens() {
    let t = start().await;
    let owner = t.client(&["a", "b"]).await;
    let issued = t.token(&owner).await;
    let token = issued["access_token"].as_str().expect("token");

    let body = t.introspect(&owner, token).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], owner.client_id.as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "a b");
    assert_eq!(body["iat"], issued["created_at"]);
    assert_eq!(
        body["exp"].as_i64().expect("exp") - body["iat"].as_i64().expect("iat"),
        3600
    );

    // Form with HTTP Basic and a hint (Authlib); Bearer null beside JSON credentials (node).
    let r = t
        .http
        .post(t.url("/oauth/introspect"))
        .header(
            "authorization",
            basic(&owner.client_id, &owner.client_secret),
        )
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .expect("request");
    let (status, headers, body) = parts(r).await;
    assert_eq!((status, body["active"].as_bool()), (200, Some(true)));
    assert_eq!(headers["cache-control"], "no-store");
    let r = t
        .http
        .post(t.url("/oauth/introspect"))
        .header("authorization", "Bearer null")
        .json(
            &json!({"client_id": owner.client_id, "client_secret": owner.client_secret,
                      "token": token}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(parts(r).await.2["active"], true);

    // Another client learns nothing; unknown tokens are inactive.
    let other = t.client(&[]).await;
    assert_eq!(t.introspect(&other, token).await, json!({"active": false}));
    assert_eq!(
        t.introspect(&owner, "garbage").await,
        json!({"active": false})
    );

    // Errors.
    let r = t
        .post_json(
            "/oauth/introspect",
            &json!({"client_id": owner.client_id, "client_secret": "x", "token": token}),
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    // The token's owner row, read with the token, must not stand in for another client's:
    // another client with a wrong secret is refused too.
    let r = t
        .post_json(
            "/oauth/introspect",
            &json!({"client_id": other.client_id, "client_secret": owner.client_secret,
                    "token": token}),
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = t
        .post_json(
            "/oauth/introspect",
            &json!({"client_id": owner.client_id, "client_secret": owner.client_secret}),
        )
        .await;
    assert_oauth_error(r, 400, "invalid_request").await;
    // Authentication is judged before the missing token.
    let r = t
        .post_json(
            "/oauth/introspect",
            &json!({"client_id": owner.client_id, "client_secret": "x"}),
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    let r = t
        .post_json(
            "/oauth/introspect",
            &json!({"client_id": owner.client_id, "client_secret": owner.client_secret,
                    "token": ["x"]}),
        )
        .await;
    assert_oauth_error(r, 400, "invalid_request").await;
}

#[tokio::test]
async fn token_info_has_the_doorkeeper_shape() {
    let t = start().await;
    let creds = t.client(&["read"]).await;
    let issued = t.token(&creds).await;
    let token = issued["access_token"].as_str().expect("token");

    // Kopo Kopo's SDKs send Content-Type: application/json on this GET, with no body.
    let r = t
        .http
        .get(t.url("/oauth/token/info"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/vnd.kopokopo.v4.hal+json")
        .send()
        .await
        .expect("request");
    let (status, headers, body) = parts(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["resource_owner_id"], Value::Null);
    assert_eq!(body["scope"], json!(["read"]));
    assert_eq!(body["application"], json!({"uid": creds.client_id}));
    assert_eq!(body["created_at"], issued["created_at"]);
    let left = body["expires_in"].as_i64().expect("expires_in");
    assert!((3590..=3600).contains(&left), "{left}");
    assert_eq!(body.as_object().expect("object").len(), 5);

    // No token, unknown token, `Bearer null`: 401 invalid_token with a Bearer challenge.
    let r = t
        .http
        .get(t.url("/oauth/token/info"))
        .send()
        .await
        .expect("request");
    let www = r.headers()["www-authenticate"]
        .to_str()
        .expect("h")
        .to_string();
    assert!(www.starts_with("Bearer "), "{www}");
    assert_oauth_error(r, 401, "invalid_token").await;
    for bad in ["null", "unknown-token"] {
        let r = t
            .http
            .get(t.url("/oauth/token/info"))
            .bearer_auth(bad)
            .send()
            .await
            .expect("request");
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .expect("h")
            .contains("invalid_token"));
        assert_oauth_error(r, 401, "invalid_token").await;
    }
    let r = t
        .http
        .post(t.url("/oauth/token/info"))
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 405, "invalid_request").await;
}

#[tokio::test]
async fn lifetime_is_configurable_and_expired_tokens_are_inactive() {
    let t = start_with(|c| c.oauth_token_lifetime_secs = Some(1)).await;
    let creds = t.client(&[]).await;
    let issued = t.token(&creds).await;
    assert_eq!(issued["expires_in"], 1);
    let token = issued["access_token"].as_str().expect("token");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(t.introspect(&creds, token).await, json!({"active": false}));
    assert_eq!(t.info(token).await.0, 401);
    // Revoking an expired token is fine too.
    assert_eq!(t.revoke(&creds, token).await, 200);
    // The janitor's purge removes it; the answers stay the same.
    assert!(t.server.state.oauth.purge_expired().await.expect("purge") >= 1);
    assert_eq!(t.introspect(&creds, token).await, json!({"active": false}));
}

#[tokio::test]
async fn tokens_and_secrets_are_stored_only_as_hashes() {
    let t = start().await;
    let creds = t.client(&["read"]).await;
    let token = t.access_token(&creds).await;
    t.server.shutdown().await;
    let path = t.dir.path().join("latchkey.db");
    let mut bytes = std::fs::read(&path).expect("db");
    for suffix in ["-wal", "-shm"] {
        if let Ok(more) = std::fs::read(format!("{}{suffix}", path.display())) {
            bytes.extend(more);
        }
    }
    let hay = String::from_utf8_lossy(&bytes);
    assert!(hay.contains(&creds.client_id), "sanity: ids are stored");
    assert!(
        !hay.contains(&creds.client_secret),
        "secret in plaintext at rest"
    );
    assert!(!hay.contains(&token), "token in plaintext at rest");
}

#[tokio::test]
async fn a_token_issued_before_tokens_carried_their_time_is_still_honoured() {
    // Earlier versions issued 43-character values stored under their plain SHA-256; today's
    // are 51 characters whose key starts with their issue time. Both must be found.
    use latchkey_server::oauth::token::OAuthTokenRecord;
    use latchkey_server::token_format::{TokenHash, TokenValue};
    use sha2::{Digest, Sha256};
    let t = start().await;
    let creds = t.client(&["read"]).await;
    let today = t.access_token(&creds).await;
    assert_eq!(today.len(), 51, "{today}");

    let stores = open_stores(&t.database).await.expect("stores");
    let old = TokenValue::generate();
    assert_eq!(old.expose().len(), 43);
    let now = now_secs() * 1000;
    let client = stores
        .oauth
        .client_by_id(&creds.client_id)
        .await
        .expect("read client")
        .expect("client");
    assert!(stores
        .oauth
        .insert_token(
            &OAuthTokenRecord {
                hash: TokenHash(Sha256::digest(old.expose().as_bytes()).into()),
                client_id: creds.client_id.clone(),
                scopes: vec!["read".into()],
                created_at: now,
                expires_at: now + 3_600_000,
                revoked_at: None,
            },
            &client.secret_hash,
        )
        .await
        .expect("insert"));

    for token in [old.expose(), today.as_str()] {
        assert_eq!(t.introspect(&creds, token).await["active"], true, "{token}");
        assert_eq!(t.info(token).await.0, 200);
        assert_eq!(t.revoke(&creds, token).await, 200);
        assert_eq!(
            t.introspect(&creds, token).await["active"],
            false,
            "{token}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_token_requests_are_all_issued_and_distinct() {
    let t = start().await;
    let creds = t.client(&[]).await;
    let t = std::sync::Arc::new(t);
    let joins: Vec<_> = (0..200)
        .map(|_| {
            let (t, creds) = (t.clone(), creds.clone());
            tokio::spawn(async move { t.access_token(&creds).await })
        })
        .collect();
    let mut tokens = std::collections::HashSet::new();
    for j in joins {
        tokens.insert(j.await.expect("join"));
    }
    assert_eq!(tokens.len(), 200);
    for token in tokens.iter().take(20) {
        assert_eq!(t.introspect(&creds, token).await["active"], true);
    }
}

#[tokio::test]
async fn kopo_kopo_wire_examples() {
    // The exact requests NOTES.md (interop/kopokopo) recorded from the SDKs.
    let t = start().await;
    let creds = t.client(&[]).await;
    // k2-connect (Python) token request: form, HAL Accept header, no Basic.
    let r = t
        .http
        .post(t.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/vnd.kopokopo.v4.hal+json")
        .header("user-agent", "Kopokopo-Python-SDK")
        .body(format!(
            "client_id={}&client_secret={}&grant_type=client_credentials",
            creds.client_id, creds.client_secret
        ))
        .send()
        .await
        .expect("request");
    let (status, headers, body) = parts(r).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("application/json"));
    let token = body["access_token"].as_str().expect("token");
    // k2-connect-node introspect and revoke: JSON, `Authorization: Bearer null`.
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let r = t
            .http
            .post(t.url(path))
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .header("authorization", "Bearer null")
            .header("accept-encoding", "gzip, compress, deflate, br")
            .body(
                json!({"client_id": creds.client_id, "client_secret": creds.client_secret,
                       "token": token})
                .to_string(),
            )
            .send()
            .await
            .expect("request");
        let (status, _, body) = parts(r).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    assert_eq!(t.info(token).await.0, 401, "revoked");
}
