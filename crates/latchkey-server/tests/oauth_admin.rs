//! The admin API of the private listener: OAuth client management, authenticated by the admin
//! token; off (404 with a clear description) without one.

mod oauth_support;

use latchkey_proto::oauth::ClientCredentials;
use oauth_support::{assert_oauth_error, parts, start, start_with, TestServer, ADMIN_TOKEN};
use serde_json::{json, Value};

async fn with_admin() -> TestServer {
    start_with(|c| c.admin_token = Some(ADMIN_TOKEN.into())).await
}

/// Admin calls as methods of the test server.
trait AdminCalls {
    fn admin_url(&self, path: &str) -> String;
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>)
        -> (u16, Value);
}

impl AdminCalls for TestServer {
    fn admin_url(&self, path: &str) -> String {
        format!("{}/admin/oauth-clients{path}", self.private)
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.admin_url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json")
        };
        (status, body)
    }
}

fn creds(v: &Value) -> ClientCredentials {
    serde_json::from_value(v.clone()).expect("credentials")
}

#[tokio::test]
async fn admin_api_is_off_without_a_token() {
    let t = start().await;
    for path in [
        "/admin/oauth-clients",
        "/admin/oauth-clients/x/disable",
        "/admin/other",
    ] {
        let r = t
            .http
            .get(format!("{}{path}", t.private))
            .bearer_auth("anything")
            .send()
            .await
            .expect("request");
        let body = assert_oauth_error(r, 404, "invalid_request").await;
        assert!(
            body["error_description"]
                .as_str()
                .expect("d")
                .contains("admin token"),
            "{body}"
        );
    }
    let r = t
        .http
        .post(format!("{}/admin/oauth-clients", t.private))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 404, "invalid_request").await;
}

#[tokio::test]
async fn admin_api_needs_the_admin_token_and_lives_on_the_private_listener_only() {
    let t = with_admin().await;
    let url = format!("{}/admin/oauth-clients", t.private);
    let r = t.http.get(&url).send().await.expect("request");
    let www = r.headers()["www-authenticate"]
        .to_str()
        .expect("h")
        .to_string();
    assert!(www.starts_with("Bearer "), "{www}");
    assert_oauth_error(r, 401, "invalid_token").await;
    let r = t
        .http
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 401, "invalid_token").await;
    let r = t
        .http
        .get(&url)
        .basic_auth("admin", Some(ADMIN_TOKEN))
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 401, "invalid_token").await;
    let r = t
        .http
        .get(format!("{}/admin/oauth-clients", t.public))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404, "no admin API on the public listener");
    let (status, body) = t.admin(reqwest::Method::GET, "", None).await;
    assert_eq!((status, body), (200, json!([])));
}

#[tokio::test]
async fn create_list_get_and_use_a_client() {
    let t = with_admin().await;
    let (status, body) = t
        .admin(
            reqwest::Method::POST,
            "",
            Some(json!({"name": "Shop", "scopes": ["read", "write", "read"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body.as_object().expect("o").len(), 2, "{body}");
    let c = creds(&body);
    assert!(c.client_secret.len() >= 43, "≥ 256 bits");
    let issued = t.token(&c).await;
    assert_eq!(issued["scope"], "read write");

    let (status, list) = t.admin(reqwest::Method::GET, "", None).await;
    assert_eq!(status, 200);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["client_id"], c.client_id.as_str());
    assert_eq!(list[0]["name"], "Shop");
    assert_eq!(list[0]["scopes"], json!(["read", "write"]));
    assert!(list[0].get("disabled_at").is_none());
    assert!(!list[0].to_string().contains(&c.client_secret));

    let (status, one) = t
        .admin(reqwest::Method::GET, &format!("/{}", c.client_id), None)
        .await;
    assert_eq!((status, &one), (200, &list[0]));

    // Bad input.
    for bad in [
        json!({"name": ""}),
        json!({"name": "x", "scopes": ["a b"]}),
        json!({"scopes": []}),
        json!([1]),
    ] {
        let (status, body) = t.admin(reqwest::Method::POST, "", Some(bad.clone())).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{bad}"
        );
    }
    let r = t
        .http
        .post(t.admin_url(""))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .expect("request");
    assert_oauth_error(r, 400, "invalid_request").await;
    let (status, body) = t.admin(reqwest::Method::GET, "/nope", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("invalid_request"))
    );
    let (status, _) = t.admin(reqwest::Method::PUT, "", None).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn disable_revokes_every_token_and_refuses_the_client() {
    let t = with_admin().await;
    let (_, body) = t
        .admin(reqwest::Method::POST, "", Some(json!({"name": "a"})))
        .await;
    let c = creds(&body);
    let (_, body) = t
        .admin(
            reqwest::Method::POST,
            "",
            Some(json!({"name": "bystander"})),
        )
        .await;
    let bystander = creds(&body);
    let tokens = [
        t.access_token(&c).await,
        t.access_token(&c).await,
        t.access_token(&c).await,
    ];
    let bystander_token = t.access_token(&bystander).await;

    let path = format!("/{}/disable", c.client_id);
    let (status, body) = t.admin(reqwest::Method::POST, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked_tokens"], 3);
    assert!(body["client"]["disabled_at"].is_i64());
    for token in &tokens {
        assert_eq!(t.info(token).await.0, 401);
    }
    assert_eq!(
        t.introspect(&bystander, &bystander_token).await["active"],
        true
    );

    let r = t
        .post_form(
            "/oauth/token",
            &format!(
                "grant_type=client_credentials&client_id={}&client_secret={}",
                c.client_id, c.client_secret
            ),
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;

    // Idempotent.
    let (status, body) = t.admin(reqwest::Method::POST, &path, None).await;
    assert_eq!((status, body["revoked_tokens"].as_u64()), (200, Some(0)));

    // Enable: new tokens work, old ones stay dead.
    let (status, body) = t
        .admin(
            reqwest::Method::POST,
            &format!("/{}/enable", c.client_id),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("disabled_at").is_none());
    let fresh = t.access_token(&c).await;
    assert_eq!(t.introspect(&c, &fresh).await["active"], true);
    assert_eq!(t.introspect(&c, &tokens[0]).await["active"], false);

    let (status, _) = t.admin(reqwest::Method::POST, "/nope/disable", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn rotate_secret_replaces_it_and_can_revoke_tokens() {
    let t = with_admin().await;
    let (_, body) = t
        .admin(reqwest::Method::POST, "", Some(json!({"name": "a"})))
        .await;
    let old = creds(&body);
    let kept = t.access_token(&old).await;

    let path = format!("/{}/rotate-secret", old.client_id);
    let (status, body) = t.admin(reqwest::Method::POST, &path, None).await;
    assert_eq!(status, 200, "{body}");
    let new = creds(&body);
    assert_eq!(new.client_id, old.client_id);
    assert_ne!(new.client_secret, old.client_secret);
    let r = t
        .post_form(
            "/oauth/token",
            &format!(
                "grant_type=client_credentials&client_id={}&client_secret={}",
                old.client_id, old.client_secret
            ),
        )
        .await;
    assert_oauth_error(r, 401, "invalid_client").await;
    assert_eq!(
        t.introspect(&new, &kept).await["active"],
        true,
        "tokens survive"
    );
    let (_, info) = t
        .admin(reqwest::Method::GET, &format!("/{}", old.client_id), None)
        .await;
    assert!(info["secret_rotated_at"].is_i64());

    let (status, body) = t
        .admin(
            reqwest::Method::POST,
            &path,
            Some(json!({"revoke_tokens": true})),
        )
        .await;
    assert_eq!(status, 200);
    let newer = creds(&body);
    assert_eq!(t.introspect(&newer, &kept).await["active"], false);

    let (status, _) = t
        .admin(reqwest::Method::POST, "/nope/rotate-secret", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn delete_removes_the_client_and_its_tokens() {
    let t = with_admin().await;
    let (_, body) = t
        .admin(reqwest::Method::POST, "", Some(json!({"name": "a"})))
        .await;
    let c = creds(&body);
    let token = t.access_token(&c).await;
    let (status, body) = t
        .admin(reqwest::Method::DELETE, &format!("/{}", c.client_id), None)
        .await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(t.info(&token).await.0, 401);
    let (status, _) = t
        .admin(reqwest::Method::GET, &format!("/{}", c.client_id), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = t
        .admin(reqwest::Method::DELETE, &format!("/{}", c.client_id), None)
        .await;
    assert_eq!(status, 404);
    let (_, list) = t.admin(reqwest::Method::GET, "", None).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn failed_admin_authentications_are_rate_limited_per_source() {
    let t = start_with(|c| {
        c.admin_token = Some(ADMIN_TOKEN.into());
        c.oauth_auth_failures_per_source = Some(3);
    })
    .await;
    let url = t.admin_url("");
    for _ in 0..3 {
        let r = t
            .http
            .get(&url)
            .bearer_auth("guess")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 401);
    }
    let r = t
        .http
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert!(r.headers().get("retry-after").is_some());
    let (status, _, body) = parts(r).await;
    assert_eq!(status, 429, "{body}");
}
