//! Interactive (outgoing-payment) grants through the SDK against a real Latchkey server: the
//! resource owner's consent is given in a minimal cookie-keeping "browser", then the client
//! continues the grant with the `interact_ref` of the finish redirect (checking its hash), or by
//! polling.

mod common;

use common::TestServer;
use latchkey_client::access;
use latchkey_client::gnap::{AccessItem, Action, Amount, ErrorCode, GrantResponse, OutgoingLimits};
use latchkey_client::interaction::{redirect_finish, verify_interaction_hash};
use latchkey_client::AuthenticatedClient;

const FINISH_URI: &str = "http://client.example/return";

/// Follows nothing by itself; keeps cookies by hand.
struct Browser {
    http: reqwest::Client,
    cookies: Vec<String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
            cookies: Vec::new(),
        }
    }

    async fn keep(&mut self, response: reqwest::Response) -> (u16, Option<String>, String) {
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().expect("ascii").split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|c| !c.starts_with(&format!("{name}=")));
                if !value.is_empty() {
                    self.cookies.push(pair.to_string());
                }
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().expect("ascii").to_string());
        (status, location, response.text().await.expect("body"))
    }

    async fn get(&mut self, url: &str) -> (u16, Option<String>, String) {
        let response = self
            .http
            .get(url)
            .header("cookie", self.cookies.join("; "))
            .send()
            .await
            .expect("get");
        self.keep(response).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let response = self
            .http
            .post(url)
            .header("cookie", self.cookies.join("; "))
            .form(form)
            .send()
            .await
            .expect("post");
        self.keep(response).await
    }
}

fn absolute(server: &TestServer, location: &str) -> String {
    if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{}{location}", server.public_url)
    }
}

/// Walks the consent page with `decision` and returns where the finish step sends the browser
/// (or `None` when it shows a page instead).
async fn consent(server: &TestServer, redirect: &str, decision: &str) -> Option<String> {
    let mut browser = Browser::new();
    let (status, location, body) = browser.get(redirect).await;
    assert_eq!(status, 302, "interaction start redirects: {body}");
    let consent_url = absolute(server, &location.expect("consent location"));
    let (status, _, page) = browser.get(&consent_url).await;
    assert_eq!(status, 200, "{page}");
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("csrf field") + marker.len();
    let csrf = page[start..]
        .split('"')
        .next()
        .expect("csrf value")
        .to_string();
    let (status, location, body) = browser
        .post(&consent_url, &[("csrf", &csrf), ("decision", decision)])
        .await;
    assert!(
        (300..400).contains(&status),
        "decision redirects: {status} {body}"
    );
    let finish_url = absolute(server, &location.expect("finish location"));
    let (status, location, _) = browser.get(&finish_url).await;
    if status == 302 {
        location
    } else {
        None
    }
}

fn outgoing(server: &TestServer) -> Vec<AccessItem> {
    vec![access::outgoing_payment(
        &[Action::Create, Action::Read],
        &server.alice.url,
        Some(OutgoingLimits {
            debit_amount: Some(Amount {
                value: "1234".into(),
                asset_code: "USD".into(),
                asset_scale: 2,
            }),
            ..OutgoingLimits::default()
        }),
    )]
}

async fn request(
    server: &TestServer,
    client: &AuthenticatedClient,
    finish_nonce: Option<&str>,
) -> GrantResponse {
    let request = client.interactive_grant_request(
        outgoing(server),
        finish_nonce.map(|nonce| redirect_finish(FINISH_URI, nonce)),
    );
    client
        .grant()
        .request(&server.grant_endpoint(), &request)
        .await
        .expect("interactive grant request accepted")
}

fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn finish_redirect_then_continue_with_interact_ref_issues_the_token() {
    let server = TestServer::start().await;
    let client = server.alice.client();
    let nonce = "client-nonce-4edb";
    let pending = request(&server, &client, Some(nonce)).await;
    assert!(pending.access_token.is_none(), "no token before consent");
    let interact = pending.interact.clone().expect("interaction");
    let cont = pending.continue_.clone();

    // Before consent, continuing without the interact_ref the client asked for is refused.
    let err = client
        .grant()
        .continue_grant(&cont.uri, Some(&cont.access_token.value), None)
        .await
        .expect_err("interact_ref required");
    assert_eq!(err.gnap_code(), Some(ErrorCode::InvalidRequest), "{err}");

    let back = consent(&server, &interact.redirect, "accept")
        .await
        .expect("finish redirect to the client");
    assert!(back.starts_with(FINISH_URI), "{back}");
    let interact_ref = query(&back, "interact_ref").expect("interact_ref");
    let hash = query(&back, "hash").expect("hash");
    assert!(
        verify_interaction_hash(
            &hash,
            nonce,
            &interact.finish,
            &interact_ref,
            &server.grant_endpoint()
        ),
        "the finish hash verifies with the SDK helper"
    );

    let err = client
        .grant()
        .continue_grant(
            &cont.uri,
            Some(&cont.access_token.value),
            Some("not-the-ref"),
        )
        .await
        .expect_err("a wrong interact_ref is refused");
    assert!(err.is_invalid_continuation(), "{err}");

    let issued = client
        .grant()
        .continue_grant(
            &cont.uri,
            Some(&cont.access_token.value),
            Some(&interact_ref),
        )
        .await
        .expect("continuation issues the token");
    let token = issued.access_token.expect("access token");
    assert_eq!(token.access, outgoing(&server));
    assert!(server.is_active(&token.value).await);

    // The whole life: rotate, then cancel the grant with the continuation from the answer.
    let rotated = client
        .token()
        .rotate(&token.manage, Some(&token.value))
        .await
        .expect("rotates")
        .access_token;
    assert!(!server.is_active(&token.value).await);
    assert!(server.is_active(&rotated.value).await);
    let cont = issued.continue_;
    client
        .grant()
        .cancel(&cont.uri, Some(&cont.access_token.value))
        .await
        .expect("cancels");
    assert!(!server.is_active(&rotated.value).await);
}

#[tokio::test]
async fn polling_without_finish_waits_then_gets_the_token() {
    let server = TestServer::start_with(|layer| layer.continue_wait_secs = Some(1)).await;
    let client = server.alice.client();
    let pending = request(&server, &client, None).await;
    let cont = pending.continue_.clone();
    assert_eq!(cont.wait, Some(1));

    let err = client
        .grant()
        .continue_grant(&cont.uri, Some(&cont.access_token.value), None)
        .await
        .expect_err("polling before `wait` is too fast");
    assert_eq!(err.gnap_code(), Some(ErrorCode::TooFast), "{err}");
    assert!(err.is_retryable());

    let interact = pending.interact.expect("interaction");
    assert!(
        consent(&server, &interact.redirect, "accept")
            .await
            .is_none(),
        "without a finish URI the browser sees a page"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let issued = client
        .grant()
        .continue_grant(&cont.uri, Some(&cont.access_token.value), None)
        .await
        .expect("poll after consent issues the token");
    let token = issued.access_token.expect("token");
    assert!(server.is_active(&token.value).await);
    client
        .token()
        .revoke(&token.manage, Some(&token.value))
        .await
        .expect("revokes");
    assert!(!server.is_active(&token.value).await);
}

#[tokio::test]
async fn a_pending_grant_can_be_cancelled_and_then_not_continued() {
    let server = TestServer::start().await;
    let client = server.alice.client();
    let pending = request(&server, &client, Some("n1")).await;
    let cont = pending.continue_;
    client
        .grant()
        .cancel(&cont.uri, Some(&cont.access_token.value))
        .await
        .expect("cancels a pending grant");
    let err = client
        .grant()
        .continue_grant(&cont.uri, Some(&cont.access_token.value), Some("anything"))
        .await
        .expect_err("cancelled");
    assert!(err.is_invalid_continuation(), "{err}");
}

#[tokio::test]
async fn a_denied_grant_is_refused_on_continuation() {
    let server = TestServer::start().await;
    let client = server.alice.client();
    let pending = request(&server, &client, Some("n2")).await;
    let interact = pending.interact.expect("interaction");
    let back = consent(&server, &interact.redirect, "deny")
        .await
        .expect("finish redirect");
    assert_eq!(query(&back, "result").as_deref(), Some("grant_rejected"));
    let cont = pending.continue_;
    let err = client
        .grant()
        .continue_grant(&cont.uri, Some(&cont.access_token.value), Some("whatever"))
        .await
        .expect_err("rejected grant");
    assert!(
        matches!(
            err.gnap_code(),
            Some(ErrorCode::RequestDenied | ErrorCode::UserDenied)
        ),
        "{err}"
    );
}
