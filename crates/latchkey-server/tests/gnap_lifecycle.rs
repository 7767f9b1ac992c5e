//! The Open Payments token lifecycle over real HTTP: grant, introspect, rotate, revoke, cancel,
//! and every refusal on the way.

mod support;

use serde_json::{json, Value};
use support::{assert_gnap_error, incoming, now, TestServer};

fn object_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn grant_rotate_revoke_cancel_end_to_end() {
    let server = TestServer::start().await;
    let alice = server.wallet_client("alice");
    let access = incoming(&alice.wallet_address);

    let grant = alice.grant(&server, access.clone()).await;
    assert_eq!(grant.status, 200, "{}", grant.text);
    let token = &grant.body["access_token"];
    // auth-server.yaml: access_token has additionalProperties: false.
    assert_eq!(
        object_keys(token),
        ["access", "expires_in", "manage", "value"]
    );
    assert_eq!(token["expires_in"], 600);
    assert_eq!(token["access"], access);
    let manage = token["manage"].as_str().expect("manage").to_string();
    assert!(manage.starts_with(&server.public("/token/")));
    let value = token["value"].as_str().expect("value").to_string();
    assert!(value.len() >= 43, "256-bit token");
    let cont = &grant.body["continue"];
    let continue_uri = cont["uri"].as_str().expect("uri").to_string();
    let continue_token = cont["access_token"]["value"]
        .as_str()
        .expect("ct")
        .to_string();
    assert!(continue_uri.starts_with(&server.public("/continue/")));

    // Introspection sees the token, its grant, access and client.
    let seen = server.introspect(&value).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["access"], access);
    assert_eq!(seen["client"]["walletAddress"], alice.wallet_address);
    assert!(seen["grant"].as_str().is_some());

    // Rotate: new value, new manage URL, same access; the old token is dead.
    let rotated = alice.send("POST", &manage, Some(&value), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(object_keys(&rotated.body), ["access_token"]);
    let new_value = rotated.body["access_token"]["value"]
        .as_str()
        .expect("v")
        .to_string();
    let new_manage = rotated.body["access_token"]["manage"]
        .as_str()
        .expect("m")
        .to_string();
    assert_ne!(new_value, value);
    assert_ne!(new_manage, manage);
    assert_eq!(rotated.body["access_token"]["access"], access);
    assert_eq!(rotated.body["access_token"]["expires_in"], 600);
    assert_eq!(server.introspect(&value).await["active"], false);
    assert_eq!(server.introspect(&new_value).await["active"], true);
    assert_eq!(server.introspect(&new_value).await["grant"], seen["grant"]);

    // The rotated-away token can be neither rotated nor used.
    let again = alice.send("POST", &manage, Some(&value), None).await;
    assert_gnap_error(&again, 400, "invalid_rotation");

    // Revoke, idempotently.
    let revoked = alice
        .send("DELETE", &new_manage, Some(&new_value), None)
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.text);
    assert!(revoked.text.is_empty());
    assert_eq!(server.introspect(&new_value).await["active"], false);
    let revoked_again = alice
        .send("DELETE", &new_manage, Some(&new_value), None)
        .await;
    assert_eq!(revoked_again.status, 204, "{}", revoked_again.text);
    let rotate_revoked = alice
        .send("POST", &new_manage, Some(&new_value), None)
        .await;
    assert_gnap_error(&rotate_revoked, 400, "invalid_rotation");

    // Cancel the grant, idempotently; nothing more may change it.
    let cancelled = alice
        .send("DELETE", &continue_uri, Some(&continue_token), None)
        .await;
    assert_eq!(cancelled.status, 204, "{}", cancelled.text);
    let cancelled_again = alice
        .send("DELETE", &continue_uri, Some(&continue_token), None)
        .await;
    assert_eq!(cancelled_again.status, 204, "{}", cancelled_again.text);
    let continued = alice
        .send("POST", &continue_uri, Some(&continue_token), None)
        .await;
    assert_gnap_error(&continued, 401, "invalid_continuation");
}

#[tokio::test]
async fn a_token_issued_before_tokens_carried_their_time_is_still_honoured() {
    // Earlier versions issued 43-character values stored under their plain SHA-256; today's
    // are 51 characters whose key starts with their issue time. An old token in the database
    // must still introspect, rotate (into a new-style token) and die like any other.
    use latchkey_server::domain::token::AccessTokenRecord;
    use latchkey_server::store::{open_stores, RotateOutcome};
    use latchkey_server::token_format::{new_id, TokenHash, TokenValue};
    use sha2::{Digest, Sha256};
    let server = TestServer::start().await;
    let alice = server.wallet_client("alice");
    let grant = alice.grant(&server, incoming(&alice.wallet_address)).await;
    let today = grant.body["access_token"]["value"].as_str().expect("v");
    assert_eq!(today.len(), 51, "{today}");

    // Put an old-style token in place of today's, through the store, as an earlier version
    // would have left it.
    let url = format!(
        "sqlite://{}",
        server.dir.path().join("latchkey.db").display()
    );
    let stores = open_stores(&url).await.expect("stores");
    let (current, _) = stores
        .gnap
        .token_by_hash(&TokenHash::of(today))
        .await
        .expect("read")
        .expect("today's token is stored under its time-keyed hash");
    let old = TokenValue::generate();
    assert_eq!(old.expose().len(), 43);
    let record = AccessTokenRecord {
        manage_id: new_id(),
        grant_id: current.grant_id.clone(),
        hash: TokenHash(Sha256::digest(old.expose().as_bytes()).into()),
        created_at: now() * 1000,
        expires_at: now() * 1000 + 600_000,
        revoked_at: None,
    };
    let outcome = stores
        .gnap
        .rotate_token(&current.manage_id, &record, now() * 1000)
        .await
        .expect("rotate in the store");
    assert!(matches!(outcome, RotateOutcome::Rotated));

    let seen = server.introspect(old.expose()).await;
    assert_eq!(seen["active"], true, "{seen}");
    let manage = server.public(&format!("/token/{}", record.manage_id));
    let rotated = alice.send("POST", &manage, Some(old.expose()), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let fresh = rotated.body["access_token"]["value"].as_str().expect("v");
    assert_eq!(fresh.len(), 51);
    assert_eq!(server.introspect(old.expose()).await["active"], false);
    assert_eq!(server.introspect(fresh).await["active"], true);
}

#[tokio::test]
async fn cancel_kills_every_token_of_the_grant() {
    let server = TestServer::start().await;
    let alice = server.wallet_client("alice");
    let grant = alice.grant(&server, incoming(&alice.wallet_address)).await;
    let value = grant.body["access_token"]["value"]
        .as_str()
        .expect("v")
        .to_string();
    let manage = grant.body["access_token"]["manage"]
        .as_str()
        .expect("m")
        .to_string();
    let rotated = alice.send("POST", &manage, Some(&value), None).await;
    let live = rotated.body["access_token"]["value"]
        .as_str()
        .expect("v")
        .to_string();
    let live_manage = rotated.body["access_token"]["manage"]
        .as_str()
        .expect("m")
        .to_string();
    assert_eq!(server.introspect(&live).await["active"], true);

    let uri = grant.body["continue"]["uri"].as_str().expect("uri");
    let ct = grant.body["continue"]["access_token"]["value"]
        .as_str()
        .expect("ct");
    assert_eq!(alice.send("DELETE", uri, Some(ct), None).await.status, 204);
    assert_eq!(server.introspect(&live).await["active"], false);
    let rotate_after_cancel = alice.send("POST", &live_manage, Some(&live), None).await;
    assert_gnap_error(&rotate_after_cancel, 400, "invalid_rotation");
    // Revoking a token of a cancelled grant is still a success (idempotent).
    assert_eq!(
        alice
            .send("DELETE", &live_manage, Some(&live), None)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn another_client_cannot_manage_the_token_or_grant() {
    let server = TestServer::start().await;
    let alice = server.wallet_client("alice");
    let bob = server.wallet_client("bob");
    let grant = alice.grant(&server, incoming(&alice.wallet_address)).await;
    let value = grant.body["access_token"]["value"].as_str().expect("v");
    let manage = grant.body["access_token"]["manage"].as_str().expect("m");
    let uri = grant.body["continue"]["uri"].as_str().expect("uri");
    let ct = grant.body["continue"]["access_token"]["value"]
        .as_str()
        .expect("ct");

    // Bob holds the values but signs with his own key.
    assert_gnap_error(
        &bob.send("POST", manage, Some(value), None).await,
        401,
        "invalid_client",
    );
    assert_gnap_error(
        &bob.send("DELETE", manage, Some(value), None).await,
        401,
        "invalid_client",
    );
    assert_gnap_error(
        &bob.send("DELETE", uri, Some(ct), None).await,
        401,
        "invalid_client",
    );
    assert_eq!(server.introspect(value).await["active"], true);

    // Alice's own token on another token's manage URL is refused (token binding).
    let other = alice.grant(&server, incoming(&alice.wallet_address)).await;
    let other_value = other.body["access_token"]["value"].as_str().expect("v");
    assert_gnap_error(
        &alice.send("DELETE", manage, Some(other_value), None).await,
        401,
        "invalid_client",
    );
    // The continuation token is not an access token.
    assert_gnap_error(
        &alice.send("DELETE", manage, Some(ct), None).await,
        401,
        "invalid_client",
    );
    // No Authorization header at all.
    assert_gnap_error(
        &alice.send("DELETE", manage, None, None).await,
        401,
        "invalid_client",
    );
    assert_eq!(server.introspect(value).await["active"], true);
}

#[tokio::test]
async fn introspection_filters_by_requested_access() {
    let server = TestServer::start().await;
    let alice = server.wallet_client("alice");
    let access = json!([
        { "type": "incoming-payment", "actions": ["create", "read"], "identifier": alice.wallet_address },
        { "type": "quote", "actions": ["create", "read"] }
    ]);
    let grant = alice.grant(&server, access).await;
    assert_eq!(grant.status, 200, "{}", grant.text);
    let value = grant.body["access_token"]["value"].as_str().expect("v");
    let only_quote = server
        .introspect_body(
            json!({ "access_token": value, "access": [{ "type": "quote", "actions": ["read"] }] }),
        )
        .await;
    assert_eq!(only_quote["active"], true);
    assert_eq!(only_quote["access"].as_array().expect("array").len(), 1);
    assert_eq!(only_quote["access"][0]["type"], "quote");
    let not_granted = server
        .introspect_body(json!({ "access_token": value, "access": [{ "type": "incoming-payment", "actions": ["list"] }] }))
        .await;
    assert_eq!(not_granted, json!({ "active": false }));
    assert_eq!(
        server.introspect("never-issued").await,
        json!({ "active": false })
    );
}

#[tokio::test]
async fn jwk_clients_are_accepted() {
    let server = TestServer::start().await;
    let alice = server.wallet_client("alice");
    let jwk =
        latchkey_proto::keys::Jwk::from_verifying_key(&alice.key_id, &alice.key.verifying_key());
    let body = json!({
        "access_token": { "access": [{ "type": "incoming-payment", "actions": ["read"] }] },
        "client": { "jwk": jwk }
    });
    let reply = alice
        .send("POST", &server.public("/"), None, Some(&body))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let value = reply.body["access_token"]["value"].as_str().expect("v");
    let seen = server.introspect(value).await;
    assert_eq!(seen["client"]["jwk"]["kid"], alice.key_id.as_str());

    let wallet_object = json!({
        "access_token": { "access": [{ "type": "quote", "actions": ["read"] }] },
        "client": { "walletAddress": alice.wallet_address }
    });
    let reply = alice
        .send("POST", &server.public("/"), None, Some(&wallet_object))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn expired_unrevoked_tokens_can_be_rotated() {
    let server = TestServer::start_with(|mut layer| {
        layer.access_token_lifetime_secs = Some(1);
        layer
    })
    .await;
    let alice = server.wallet_client("alice");
    let grant = alice.grant(&server, incoming(&alice.wallet_address)).await;
    let value = grant.body["access_token"]["value"].as_str().expect("v");
    let manage = grant.body["access_token"]["manage"].as_str().expect("m");
    assert_eq!(grant.body["access_token"]["expires_in"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(server.introspect(value).await["active"], false);
    let rotated = alice.send("POST", manage, Some(value), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let fresh = rotated.body["access_token"]["value"].as_str().expect("v");
    assert_eq!(server.introspect(fresh).await["active"], true);
    // Revoking an expired token is a success too.
    let grant = alice.grant(&server, incoming(&alice.wallet_address)).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reply = alice
        .send(
            "DELETE",
            grant.body["access_token"]["manage"].as_str().expect("m"),
            grant.body["access_token"]["value"].as_str(),
            None,
        )
        .await;
    assert_eq!(reply.status, 204);
}

#[tokio::test]
async fn bad_input_gets_protocol_shaped_errors_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let alice = server.wallet_client("alice");
    let http = &server.http;
    let grant_url = server.public("/");

    // Malformed JSON (signed, so the parser is what refuses it).
    let reply = alice
        .send_raw(
            "POST",
            &grant_url,
            None,
            Some(b"{\"client\": ".to_vec()),
            now(),
        )
        .await;
    assert_gnap_error(&reply, 400, "invalid_request");

    // Unknown access type.
    let reply = alice
        .grant(
            &server,
            json!([{ "type": "wire-transfer", "actions": ["read"] }]),
        )
        .await;
    assert_gnap_error(&reply, 400, "invalid_request");
    assert!(reply.text.contains("wire-transfer"), "{}", reply.text);

    // Action not allowed for the type; empty access.
    assert_gnap_error(
        &alice
            .grant(&server, json!([{ "type": "quote", "actions": ["list"] }]))
            .await,
        400,
        "invalid_request",
    );
    assert_gnap_error(
        &alice.grant(&server, json!([])).await,
        400,
        "invalid_request",
    );

    // An outgoing-payment grant without `interact` cannot be consented to: a clear 400.
    let outgoing = json!([{ "type": "outgoing-payment", "actions": ["create"], "identifier": alice.wallet_address }]);
    let reply = alice.grant(&server, outgoing).await;
    assert_gnap_error(&reply, 400, "invalid_request");

    // Missing signature.
    let body = json!({ "access_token": { "access": incoming(&alice.wallet_address) }, "client": alice.wallet_address });
    let reply = http
        .post(&grant_url)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status(), 401);
    let v: Value = reply.json().await.expect("json");
    assert_eq!(v["error"]["code"], "invalid_client");

    // Signature too old (outside the 5-minute window).
    let reply = alice
        .send_raw(
            "POST",
            &grant_url,
            None,
            Some(body.to_string().into_bytes()),
            now() - 3600,
        )
        .await;
    assert_gnap_error(&reply, 401, "invalid_client");

    // Signed by a key the wallet address does not publish.
    let mut stranger = alice.clone();
    stranger.key = latchkey_proto::keys::generate_signing_key();
    assert_gnap_error(
        &stranger
            .grant(&server, incoming(&alice.wallet_address))
            .await,
        401,
        "invalid_client",
    );

    // Unreachable client wallet address: 400 invalid_client.
    let nowhere = json!({ "access_token": { "access": incoming(&alice.wallet_address) }, "client": "http://127.0.0.1:9/wallet/nobody" });
    let reply = alice.send("POST", &grant_url, None, Some(&nowhere)).await;
    assert_gnap_error(&reply, 400, "invalid_client");

    // Body over the limit: 413.
    let huge = vec![b'a'; 200 * 1024];
    let reply = http
        .post(&grant_url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status(), 413);
    let v: Value = reply.json().await.expect("json");
    assert_eq!(v["error"]["code"], "invalid_request");

    // Unknown manage URL and continue URI, wrong method, unknown path.
    // auth-server.yaml: DELETE /token/{id} answers 204, 401 or 500 (no 404); POST answers 404
    // with `invalid_rotation`.
    let unknown = [
        (
            "DELETE",
            "/token/AAAAAAAAAAAAAAAAAAAAAA",
            401,
            "invalid_client",
        ),
        ("DELETE", "/token/not-an-id", 401, "invalid_client"),
        ("POST", "/token/not-an-id", 404, "invalid_rotation"),
        (
            "POST",
            "/token/AAAAAAAAAAAAAAAAAAAAAA",
            404,
            "invalid_rotation",
        ),
        (
            "DELETE",
            "/continue/AAAAAAAAAAAAAAAAAAAAAA",
            404,
            "invalid_continuation",
        ),
    ];
    for (method, path, status, code) in unknown {
        let reply = alice
            .send(method, &server.public(path), Some("x"), None)
            .await;
        assert_gnap_error(&reply, status, code);
        if code == "invalid_client" {
            // The unknown-URL refusal, not a signature refusal that looks the same.
            assert!(
                reply.text.contains("no access token is managed"),
                "{method} {path}: {}",
                reply.text
            );
        }
    }
    let reply = http
        .put(server.public("/token/AAAAAAAAAAAAAAAAAAAAAA"))
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status(), 405);
    let reply = http.get(server.public("/nope")).send().await.expect("send");
    assert_eq!(reply.status(), 404);
    let v: Value = reply.json().await.expect("json");
    assert_eq!(v["error"]["code"], "invalid_request");

    // Content-Digest that does not match the body.
    let good = body.to_string();
    let mut tampered = alice.clone();
    tampered.http = http.clone();
    let reply = {
        // Sign one body, send another of the same length.
        use latchkey_proto::digest::content_digest_sha256;
        use latchkey_proto::httpsig::{components_for, sign_request, RequestParts};
        let headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("content-length".to_string(), good.len().to_string()),
            (
                "content-digest".to_string(),
                content_digest_sha256(good.as_bytes()),
            ),
        ];
        let parts = RequestParts {
            method: "POST",
            target_uri: &grant_url,
            headers: &headers,
        };
        let signed = sign_request(
            &parts,
            &components_for(true, false),
            &alice.key_id,
            now(),
            &alice.key,
        )
        .expect("sign");
        let other = good.replace("read", "rxad");
        http.post(&grant_url)
            .header("content-type", "application/json")
            .header("content-digest", &headers[2].1)
            .header("signature-input", signed.signature_input)
            .header("signature", signed.signature)
            .body(other)
            .send()
            .await
            .expect("send")
    };
    assert_eq!(reply.status(), 401);

    // Introspection: malformed body.
    let reply = http
        .post(format!("{}/", server.server.private_url))
        .header("content-type", "application/json")
        .body("[1,2")
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status(), 400);

    // Still serving.
    let health = http
        .get(format!("{}/healthz", server.server.private_url))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let ok = alice.grant(&server, incoming(&alice.wallet_address)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
}

#[tokio::test]
async fn concurrent_rotations_yield_exactly_one_successor() {
    let server = TestServer::start().await;
    let alice = server.wallet_client("alice");
    for _ in 0..5 {
        let grant = alice.grant(&server, incoming(&alice.wallet_address)).await;
        let value = grant.body["access_token"]["value"]
            .as_str()
            .expect("v")
            .to_string();
        let manage = grant.body["access_token"]["manage"]
            .as_str()
            .expect("m")
            .to_string();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (alice, value, manage) = (alice.clone(), value.clone(), manage.clone());
            tasks.push(tokio::spawn(async move {
                alice.send("POST", &manage, Some(&value), None).await
            }));
        }
        let mut successors = Vec::new();
        for task in tasks {
            let reply = task.await.expect("join");
            match reply.status {
                200 => successors.push(
                    reply.body["access_token"]["value"]
                        .as_str()
                        .expect("v")
                        .to_string(),
                ),
                400 => assert_eq!(reply.body["error"]["code"], "invalid_rotation"),
                other => panic!("unexpected {other}: {}", reply.text),
            }
        }
        assert_eq!(successors.len(), 1, "exactly one rotation wins");
        assert_eq!(server.introspect(&successors[0]).await["active"], true);
        assert_eq!(server.introspect(&value).await["active"], false);
    }
}
