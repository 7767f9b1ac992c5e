//! Interactive grants over real HTTP: consent page, finish redirect and hash, continuation,
//! polling with `wait`, the identity-provider API, and every refusal on the way.

mod support;

use base64::Engine;
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{assert_gnap_error, Signer, TestServer};

/// A browser without JavaScript: follows nothing by itself, keeps cookies by hand.
struct Browser {
    http: reqwest::Client,
    cookies: Vec<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            cookies: Vec::new(),
        }
    }

    fn absorb(&mut self, response: &reqwest::Response) {
        for set in response.headers().get_all("set-cookie") {
            let pair = set
                .to_str()
                .expect("text")
                .split(';')
                .next()
                .expect("pair")
                .to_string();
            let name = pair.split('=').next().expect("name").to_string();
            self.cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            if !pair.ends_with('=') {
                self.cookies.push(pair);
            }
        }
    }

    async fn read(&mut self, response: reqwest::Response) -> Page {
        self.absorb(&response);
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let location = headers
            .get("location")
            .map(|l| l.to_str().expect("text").to_string());
        let body = response.text().await.expect("body");
        Page {
            status,
            location,
            headers,
            body,
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        let response = self
            .http
            .get(url)
            .header("cookie", self.cookies.join("; "))
            .send()
            .await
            .expect("get");
        self.read(response).await
    }

    async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .http
            .post(url)
            .header("cookie", self.cookies.join("; "))
            .form(form)
            .send()
            .await
            .expect("post");
        self.read(response).await
    }
}

fn absolute(server: &TestServer, location: &str) -> String {
    if location.starts_with("http") {
        location.to_string()
    } else {
        server.public(location)
    }
}

fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    html[start..].split('"').next().expect("value").to_string()
}

fn outgoing(wallet: &str) -> Value {
    json!([{
        "type": "outgoing-payment",
        "actions": ["create", "read"],
        "identifier": wallet,
        "limits": {
            "debitAmount": { "value": "1234", "assetCode": "USD", "assetScale": 2 },
            "interval": "R12/2026-01-01T00:00:00Z/P1M"
        }
    }])
}

async fn request_interactive(
    server: &TestServer,
    client: &Signer,
    finish: Option<(&str, &str)>,
) -> Value {
    let mut interact = json!({ "start": ["redirect"] });
    if let Some((uri, nonce)) = finish {
        interact["finish"] = json!({ "method": "redirect", "uri": uri, "nonce": nonce });
    }
    let body = json!({
        "access_token": { "access": outgoing(&client.wallet_address) },
        "client": client.wallet_address,
        "interact": interact
    });
    let reply = client
        .send("POST", &server.public("/"), None, Some(&body))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

/// Runs the browser through start and consent; returns the finish page.
async fn consent(
    server: &TestServer,
    browser: &mut Browser,
    redirect: &str,
    decision: &str,
) -> Page {
    let start = browser.get(redirect).await;
    assert_eq!(start.status, 302, "start redirects: {}", start.body);
    let consent_url = absolute(server, start.location.as_deref().expect("location"));
    let page = browser.get(&consent_url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Alice (sandbox)"),
        "client name shown: {}",
        page.body
    );
    assert!(
        page.body.contains("12.34 USD"),
        "amount shown: {}",
        page.body
    );
    assert!(page.body.contains("every month"), "interval shown");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(page.headers["content-security-policy"]
        .to_str()
        .expect("csp")
        .contains("frame-ancestors 'none'"));
    let decided = browser
        .post_form(
            &consent_url,
            &[("csrf", &csrf_of(&page.body)), ("decision", decision)],
        )
        .await;
    assert_eq!(decided.status, 303, "{}", decided.body);
    browser
        .get(&absolute(
            server,
            decided.location.as_deref().expect("finish"),
        ))
        .await
}

fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn accepted_interaction_finishes_with_a_verifiable_hash_and_issues_the_token() {
    let server = TestServer::start().await;
    let alice = server.wallet_client("alice");
    let grant = request_interactive(
        &server,
        &alice,
        Some(("https://client.example/return?x=1", "client-nonce-1")),
    )
    .await;
    assert!(grant.get("access_token").is_none());
    let redirect = grant["interact"]["redirect"]
        .as_str()
        .expect("redirect")
        .to_string();
    let server_nonce = grant["interact"]["finish"]
        .as_str()
        .expect("finish")
        .to_string();
    assert_eq!(grant["continue"]["wait"], 5);
    let uri = grant["continue"]["uri"].as_str().expect("uri").to_string();
    let ct = grant["continue"]["access_token"]["value"]
        .as_str()
        .expect("ct")
        .to_string();

    // Continuing before approval with a made-up reference is refused.
    let early = alice
        .send(
            "POST",
            &uri,
            Some(&ct),
            Some(&json!({ "interact_ref": "guess" })),
        )
        .await;
    assert_gnap_error(&early, 401, "invalid_continuation");

    let mut browser = Browser::new();
    let finished = consent(&server, &mut browser, &redirect, "accept").await;
    assert_eq!(finished.status, 302);
    let location = finished.location.expect("redirect to client");
    assert!(
        location.starts_with("https://client.example/return?x=1&"),
        "{location}"
    );
    let query = query_of(&location);
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .expect(k)
    };
    let interact_ref = get("interact_ref");
    let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(
        format!(
            "client-nonce-1\n{server_nonce}\n{interact_ref}\n{}",
            server.public("/")
        )
        .as_bytes(),
    ));
    assert_eq!(get("hash"), expected);

    let continued = alice
        .send(
            "POST",
            &uri,
            Some(&ct),
            Some(&json!({ "interact_ref": interact_ref })),
        )
        .await;
    assert_eq!(continued.status, 200, "{}", continued.text);
    let token = continued.body["access_token"]["value"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(
        continued.body["access_token"]["access"],
        outgoing(&alice.wallet_address)
    );
    assert_eq!(continued.body["continue"]["uri"], uri.as_str());
    assert_eq!(server.introspect(&token).await["active"], true);

    // Replaying the reference is refused; the grant is finalized.
    let replay = alice
        .send(
            "POST",
            &uri,
            Some(&ct),
            Some(&json!({ "interact_ref": interact_ref })),
        )
        .await;
    assert_gnap_error(&replay, 401, "invalid_continuation");
    // The finish page cannot be replayed either: the session cookie was cleared.
    let again = browser.get(&format!("{redirect}/finish")).await;
    assert_eq!(again.status, 401);

    // Rotate, revoke, cancel work on the interactive grant's token.
    let manage = continued.body["access_token"]["manage"]
        .as_str()
        .expect("manage");
    let rotated = alice.send("POST", manage, Some(&token), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_token = rotated.body["access_token"]["value"].as_str().expect("v");
    let new_manage = rotated.body["access_token"]["manage"].as_str().expect("m");
    assert_eq!(
        alice
            .send("DELETE", new_manage, Some(new_token), None)
            .await
            .status,
        204
    );
    assert_eq!(
        alice.send("DELETE", &uri, Some(&ct), None).await.status,
        204
    );
    assert_eq!(server.introspect(new_token).await["active"], false);
}

#[tokio::test]
async fn denied_interaction_redirects_with_grant_rejected() {
    let server = TestServer::start().await;
    let alice = server.wallet_client("alice");
    let grant =
        request_interactive(&server, &alice, Some(("https://client.example/cb", "n"))).await;
    let redirect = grant["interact"]["redirect"].as_str().expect("redirect");
    let mut browser = Browser::new();
    let finished = consent(&server, &mut browser, redirect, "deny").await;
    assert_eq!(finished.status, 302);
    let location = finished.location.expect("location");
    assert_eq!(
        query_of(&location),
        vec![("result".to_string(), "grant_rejected".to_string())]
    );
    let uri = grant["continue"]["uri"].as_str().expect("uri");
    let ct = grant["continue"]["access_token"]["value"]
        .as_str()
        .expect("ct");
    let continued = alice
        .send("POST", uri, Some(ct), Some(&json!({ "interact_ref": "x" })))
        .await;
    assert_gnap_error(&continued, 401, "request_denied");
    // Cancel still works on a rejected grant.
    assert_eq!(alice.send("DELETE", uri, Some(ct), None).await.status, 204);
}

#[tokio::test]
async fn polling_honours_wait_and_the_identity_provider_api_decides() {
    let server = TestServer::start_with(|mut layer| {
        layer.continue_wait_secs = Some(1);
        layer.idp_secret = Some("idp-secret-for-tests".into());
        layer
    })
    .await;
    let alice = server.wallet_client("alice");
    let grant = request_interactive(&server, &alice, None).await;
    let uri = grant["continue"]["uri"].as_str().expect("uri");
    let ct = grant["continue"]["access_token"]["value"]
        .as_str()
        .expect("ct");
    assert_eq!(grant["continue"]["wait"], 1);

    let too_fast = alice.send("POST", uri, Some(ct), None).await;
    assert_gnap_error(&too_fast, 400, "too_fast");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let pending = alice.send("POST", uri, Some(ct), None).await;
    assert_eq!(pending.status, 200, "{}", pending.text);
    assert!(pending.body.get("access_token").is_none());
    assert_eq!(pending.body["continue"]["wait"], 1);
    assert_eq!(pending.body["continue"]["access_token"]["value"], ct);

    // The identity provider looks the grant up and accepts it.
    let redirect = grant["interact"]["redirect"].as_str().expect("redirect");
    let parts: Vec<&str> = redirect.rsplitn(3, '/').collect();
    let (nonce, id) = (parts[0], parts[1]);
    let private = &server.server.private_url;
    let idp = reqwest::Client::new();
    let unauthenticated = idp
        .get(format!("{private}/grant/{id}/{nonce}"))
        .send()
        .await
        .expect("send");
    assert_eq!(unauthenticated.status(), 401);
    let wrong = idp
        .get(format!("{private}/grant/{id}/{nonce}"))
        .header("x-idp-secret", "wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(wrong.status(), 401);
    let lookup: Value = idp
        .get(format!("{private}/grant/{id}/{nonce}"))
        .header("x-idp-secret", "idp-secret-for-tests")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(lookup["state"], "PENDING");
    assert_eq!(lookup["access"], outgoing(&alice.wallet_address));
    let bad_nonce = idp
        .get(format!("{private}/grant/{id}/AAAAAAAAAAAAAAAAAAAAAA"))
        .header("x-idp-secret", "idp-secret-for-tests")
        .send()
        .await
        .expect("send");
    assert_eq!(bad_nonce.status(), 404);
    let accepted = idp
        .post(format!("{private}/grant/{id}/{nonce}/accept"))
        .header("x-idp-secret", "idp-secret-for-tests")
        .send()
        .await
        .expect("send");
    assert_eq!(accepted.status(), 202);
    let twice = idp
        .post(format!("{private}/grant/{id}/{nonce}/reject"))
        .header("x-idp-secret", "idp-secret-for-tests")
        .send()
        .await
        .expect("send");
    assert_eq!(
        twice.status(),
        401,
        "a decided grant cannot be decided again"
    );

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let issued = alice.send("POST", uri, Some(ct), None).await;
    assert_eq!(issued.status, 200, "{}", issued.text);
    let token = issued.body["access_token"]["value"]
        .as_str()
        .expect("token");
    assert_eq!(server.introspect(token).await["active"], true);
}

#[tokio::test]
async fn interaction_errors_are_protocol_shaped() {
    let server = TestServer::start_with(|mut layer| {
        layer.consent_url = None;
        layer
    })
    .await;
    let alice = server.wallet_client("alice");
    let grant =
        request_interactive(&server, &alice, Some(("https://client.example/cb", "n"))).await;
    let redirect = grant["interact"]["redirect"]
        .as_str()
        .expect("redirect")
        .to_string();
    let mut browser = Browser::new();

    // Unknown interaction, wrong nonce.
    let unknown = browser
        .get(&server.public("/interact/AAAAAAAAAAAAAAAAAAAAAA/AAAAAAAAAAAAAAAAAAAAAA"))
        .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("unknown_interaction"));
    let id = redirect.rsplit('/').nth(1).expect("id").to_string();
    let wrong_nonce = browser
        .get(&server.public(&format!("/interact/{id}/wrong")))
        .await;
    assert_eq!(wrong_nonce.status, 404);
    // Finish and consent without the session cookie.
    let no_session = browser.get(&format!("{redirect}/finish")).await;
    assert_eq!(no_session.status, 401);
    assert!(no_session.body.contains("invalid_interaction"));
    let consent_without = browser.get(&server.public(&format!("/consent/{id}"))).await;
    assert_eq!(consent_without.status, 401);
    // Finish before a decision.
    let started = browser.get(&redirect).await;
    assert_eq!(started.status, 302);
    let undecided = browser.get(&format!("{redirect}/finish")).await;
    assert_eq!(undecided.status, 401);
    // A forged form (no CSRF token) is refused and decides nothing.
    let forged = browser
        .post_form(
            &server.public(&format!("/consent/{id}")),
            &[("decision", "accept")],
        )
        .await;
    assert_eq!(forged.status, 400);
    assert!(forged.body.contains("CSRF"));
    // Cancel while pending, then the interaction cannot go on.
    let uri = grant["continue"]["uri"].as_str().expect("uri");
    let ct = grant["continue"]["access_token"]["value"]
        .as_str()
        .expect("ct");
    assert_eq!(alice.send("DELETE", uri, Some(ct), None).await.status, 204);
    let after_cancel = browser.get(&redirect).await;
    assert_eq!(after_cancel.status, 401);

    // Grant requests that cannot be interactive.
    let no_interact = alice.grant(&server, outgoing(&alice.wallet_address)).await;
    assert_gnap_error(&no_interact, 400, "invalid_request");
    let no_identifier = json!({
        "access_token": { "access": [{ "type": "incoming-payment", "actions": ["list-all"] }] },
        "client": alice.wallet_address, "interact": { "start": ["redirect"] }
    });
    let reply = alice
        .send("POST", &server.public("/"), None, Some(&no_identifier))
        .await;
    assert_gnap_error(&reply, 400, "invalid_request");
    assert!(reply.text.contains("identifier"));
    let jwk =
        latchkey_proto::keys::Jwk::from_verifying_key(&alice.key_id, &alice.key.verifying_key());
    let jwk_client = json!({
        "access_token": { "access": outgoing(&alice.wallet_address) },
        "client": { "jwk": jwk }, "interact": { "start": ["redirect"] }
    });
    let reply = alice
        .send("POST", &server.public("/"), None, Some(&jwk_client))
        .await;
    assert_gnap_error(&reply, 400, "invalid_request");
    let bad_finish = json!({
        "access_token": { "access": outgoing(&alice.wallet_address) },
        "client": alice.wallet_address,
        "interact": { "start": ["redirect"], "finish": { "method": "push", "uri": "https://c.example", "nonce": "n" } }
    });
    let reply = alice
        .send("POST", &server.public("/"), None, Some(&bad_finish))
        .await;
    assert_gnap_error(&reply, 400, "invalid_request");
    // With a finish URI, polling without interact_ref is refused.
    let grant =
        request_interactive(&server, &alice, Some(("https://client.example/cb", "n"))).await;
    let uri = grant["continue"]["uri"].as_str().expect("uri");
    let ct = grant["continue"]["access_token"]["value"]
        .as_str()
        .expect("ct");
    assert_gnap_error(
        &alice.send("POST", uri, Some(ct), None).await,
        400,
        "invalid_request",
    );
}

#[tokio::test]
async fn expired_interactions_cannot_start() {
    let server = TestServer::start_with(|mut layer| {
        layer.interaction_lifetime_secs = Some(1);
        layer.continue_wait_secs = Some(1);
        layer
    })
    .await;
    let alice = server.wallet_client("alice");
    let grant =
        request_interactive(&server, &alice, Some(("https://client.example/cb", "n"))).await;
    // A browser that started in time cannot finish after the expiry either.
    let started_grant =
        request_interactive(&server, &alice, Some(("https://client.example/cb", "n"))).await;
    let started_redirect = started_grant["interact"]["redirect"]
        .as_str()
        .expect("redirect")
        .to_string();
    let mut early_browser = Browser::new();
    assert_eq!(early_browser.get(&started_redirect).await.status, 302);
    // And a polling client learns that nobody answered in time.
    let polled = request_interactive(&server, &alice, None).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut browser = Browser::new();
    let page = browser
        .get(grant["interact"]["redirect"].as_str().expect("redirect"))
        .await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("expired"), "{}", page.body);
    let late_finish = early_browser
        .get(&format!("{started_redirect}/finish"))
        .await;
    assert_eq!(late_finish.status, 401);
    assert!(late_finish.body.contains("expired"), "{}", late_finish.body);
    let uri = polled["continue"]["uri"].as_str().expect("uri");
    let ct = polled["continue"]["access_token"]["value"]
        .as_str()
        .expect("ct");
    let expired = alice.send("POST", uri, Some(ct), None).await;
    assert_gnap_error(&expired, 401, "invalid_continuation");
    assert!(expired.text.contains("expired"), "{}", expired.text);
    // The grant is finalized as rejected: asking again is refused for good.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_gnap_error(
        &alice.send("POST", uri, Some(ct), None).await,
        401,
        "request_denied",
    );
}

#[tokio::test]
async fn only_the_browser_that_started_an_interaction_may_continue_it() {
    let server = TestServer::start().await;
    let alice = server.wallet_client("alice");
    let grant =
        request_interactive(&server, &alice, Some(("https://client.example/cb", "n"))).await;
    let redirect = grant["interact"]["redirect"].as_str().expect("redirect");
    let mut first = Browser::new();
    assert_eq!(first.get(redirect).await.status, 302);
    // The same browser may open the link again (a reload).
    assert_eq!(first.get(redirect).await.status, 302);
    // Another browser (someone who saw the link) may not take the consent over.
    let mut second = Browser::new();
    let hijack = second.get(redirect).await;
    assert_eq!(hijack.status, 401);
    assert!(hijack.body.contains("another browser"), "{}", hijack.body);
    // The first browser still completes the consent.
    let start = first.get(redirect).await;
    let consent_url = absolute(&server, start.location.as_deref().expect("location"));
    let page = first.get(&consent_url).await;
    let decided = first
        .post_form(
            &consent_url,
            &[("csrf", &csrf_of(&page.body)), ("decision", "accept")],
        )
        .await;
    let finished = first
        .get(&absolute(
            &server,
            decided.location.as_deref().expect("finish"),
        ))
        .await;
    assert_eq!(finished.status, 302);
    assert!(finished
        .location
        .expect("location")
        .contains("interact_ref="));
}

#[tokio::test]
async fn a_configured_consent_url_receives_the_user() {
    let server = TestServer::start_with(|mut layer| {
        layer.consent_url = Some("https://idp.example/consent".into());
        layer
    })
    .await;
    let alice = server.wallet_client("alice");
    let grant = request_interactive(&server, &alice, None).await;
    let mut browser = Browser::new();
    let start = browser
        .get(grant["interact"]["redirect"].as_str().expect("redirect"))
        .await;
    assert_eq!(start.status, 302);
    let location = start.location.expect("location");
    assert!(
        location.starts_with("https://idp.example/consent?"),
        "{location}"
    );
    let query = query_of(&location);
    let keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["interactId", "nonce", "clientName", "clientUri"]);
    assert_eq!(query[2].1, "Alice (sandbox)");
    assert_eq!(query[3].1, alice.wallet_address);
}
