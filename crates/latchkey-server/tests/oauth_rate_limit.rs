//! Failed client authentications are rate-limited per client id and per source address
//! (429 + `Retry-After`); honest clients are never slowed down.

mod oauth_support;

use latchkey_proto::oauth::ClientCredentials;
use oauth_support::{assert_oauth_error, client, start_with, TestServer};
use std::net::{IpAddr, Ipv4Addr};

fn form(creds: &ClientCredentials, secret: &str) -> String {
    format!(
        "grant_type=client_credentials&client_id={}&client_secret={secret}",
        creds.client_id
    )
}

async fn token_status(t: &TestServer, http: &reqwest::Client, body: String) -> reqwest::Response {
    http.post(t.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("request")
}

async fn assert_limited(r: reqwest::Response, window: u64) {
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("retry-after")
        .parse()
        .expect("seconds");
    assert!((1..=window).contains(&retry), "Retry-After {retry}");
    assert_oauth_error(r, 429, "slow_down").await;
}

#[tokio::test]
async fn per_client_limit_locks_the_id_but_not_other_clients() {
    let t = start_with(|c| {
        c.oauth_auth_failures_per_client = Some(3);
        c.oauth_auth_failures_per_source = Some(100);
    })
    .await;
    let victim = t.client(&[]).await;
    let other = t.client(&[]).await;
    for _ in 0..3 {
        let r = token_status(&t, &t.http, form(&victim, "guess")).await;
        assert_oauth_error(r, 401, "invalid_client").await;
    }
    let r = token_status(&t, &t.http, form(&victim, "guess")).await;
    assert_limited(r, 60).await;
    // While locked, this source cannot use the id even with the right secret (it never
    // authenticated as this client before)...
    let r = token_status(&t, &t.http, form(&victim, &victim.client_secret)).await;
    assert_limited(r, 60).await;
    // ... the same goes for revoke and introspect, which authenticate the same way ...
    let r = t
        .post_form(
            "/oauth/introspect",
            &format!(
                "client_id={}&client_secret={}&token=x",
                victim.client_id, victim.client_secret
            ),
        )
        .await;
    assert_eq!(r.status(), 429);
    // ... while other clients from the same source are unaffected.
    t.token(&other).await;
}

#[tokio::test]
async fn a_client_that_already_works_from_a_source_is_not_locked_out_by_an_attacker() {
    let t = start_with(|c| {
        c.oauth_auth_failures_per_client = Some(3);
        c.oauth_auth_failures_per_source = Some(100);
    })
    .await;
    let honest = t.client(&[]).await;
    let attacker = client(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    t.token(&honest).await; // honest client works from 127.0.0.1
    for _ in 0..3 {
        let r = token_status(&t, &attacker, form(&honest, "guess")).await;
        assert_eq!(r.status(), 401);
    }
    let r = token_status(&t, &attacker, form(&honest, &honest.client_secret)).await;
    assert_limited(r, 60).await;
    t.token(&honest).await;
    t.token(&honest).await;
}

#[tokio::test]
async fn per_source_limit_counts_every_failure_from_an_address() {
    let t = start_with(|c| {
        c.oauth_auth_failures_per_client = Some(100);
        c.oauth_auth_failures_per_source = Some(3);
    })
    .await;
    let creds = t.client(&[]).await;
    let r = t
        .post_form("/oauth/token", "grant_type=client_credentials")
        .await;
    assert_eq!(r.status(), 401);
    let r = t
        .post_form(
            "/oauth/token",
            "grant_type=client_credentials&client_id=unknown&client_secret=x",
        )
        .await;
    assert_eq!(r.status(), 401);
    let r = t
        .post_form(
            "/oauth/revoke",
            &format!("{}&token=t", form(&creds, "guess")),
        )
        .await;
    assert_eq!(r.status(), 401);
    let r = token_status(&t, &t.http, form(&creds, &creds.client_secret)).await;
    assert_limited(r, 60).await;
    let r = t
        .post_form("/oauth/token", "grant_type=client_credentials")
        .await;
    assert_limited(r, 60).await;
    // Another source address is unaffected.
    let elsewhere = client(Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))));
    let r = token_status(&t, &elsewhere, form(&creds, &creds.client_secret)).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn successes_never_count_and_the_window_slides() {
    let t = start_with(|c| {
        c.oauth_auth_failures_per_client = Some(2);
        c.oauth_auth_failures_per_source = Some(2);
        c.oauth_auth_failure_window_secs = Some(1);
    })
    .await;
    let creds = t.client(&[]).await;
    for _ in 0..50 {
        t.token(&creds).await;
    }
    let stranger = t.client(&[]).await;
    for _ in 0..2 {
        let r = token_status(&t, &t.http, form(&stranger, "guess")).await;
        assert_eq!(r.status(), 401);
    }
    let r = token_status(&t, &t.http, form(&stranger, &stranger.client_secret)).await;
    assert_limited(r, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    t.token(&stranger).await;
}
