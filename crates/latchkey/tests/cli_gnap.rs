//! `latchkey grant|token` against a real server: grant, rotate, revoke, cancel with flags and
//! with the seeds' variables, each effect confirmed through introspection; human output like the
//! seeds print it, `--json`, and refusals with the server's code and description.

mod cli_common;

use cli_common::{latchkey, query, Browser, TestServer};

async fn grant(server: &TestServer, extra: &[&str]) -> cli_common::Run {
    let mut args = vec![
        "grant",
        "request",
        "--url",
        &server.public_url,
        "--type",
        "incoming-payment",
        "--actions",
        "create,read",
    ];
    args.extend_from_slice(extra);
    let run = latchkey(&args, &server.alice_env()).await;
    run.assert_ok();
    run
}

#[tokio::test]
async fn grant_rotate_revoke_with_the_seed_variables() {
    let server = TestServer::start().await;
    let granted = grant(&server, &[]).await;
    let token = granted.value("ACCESS_TOKEN");
    let manage = granted.value("MANAGE_URL");
    assert!(manage.starts_with(&format!("{}/token/", server.public_url)));
    assert!(granted
        .value("CONTINUE_URI")
        .starts_with(&format!("{}/continue/", server.public_url)));
    assert!(!granted.value("CONTINUE_ACCESS_TOKEN").is_empty());
    assert_eq!(granted.value("EXPIRES_IN"), "600");
    assert!(server.is_active(&token).await);

    // token rotate, reading ACCESS_TOKEN and TOKEN_MANAGE_URL as the seed does.
    let mut env = server.alice_env();
    env.push(("ACCESS_TOKEN", &token));
    env.push(("TOKEN_MANAGE_URL", &manage));
    let rotated = latchkey(&["token", "rotate"], &env).await;
    rotated.assert_ok();
    let new_token = rotated.value("ACCESS_TOKEN");
    let new_manage = rotated.value("MANAGE_URL");
    assert_ne!(new_token, token);
    assert_ne!(new_manage, manage);
    assert!(!server.is_active(&token).await, "the old token is dead");
    assert!(server.is_active(&new_token).await, "the new token is live");

    // Rotating the old token again is refused with the server's code and description.
    let refused = latchkey(&["token", "rotate"], &env).await;
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("invalid_rotation"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("HTTP 400"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("description: "),
        "{}",
        refused.stderr
    );
    assert!(refused.stdout.is_empty());

    // token revoke with flags.
    let revoked = latchkey(
        &[
            "token",
            "revoke",
            "--url",
            &new_manage,
            "--token",
            &new_token,
        ],
        &server.alice_env(),
    )
    .await;
    revoked.assert_ok();
    assert_eq!(revoked.stdout.trim(), "Access token revoked successfully");
    assert!(!server.is_active(&new_token).await);
    // Idempotent.
    latchkey(
        &[
            "token",
            "revoke",
            "--url",
            &new_manage,
            "--token",
            &new_token,
        ],
        &server.alice_env(),
    )
    .await
    .assert_ok();
}

#[tokio::test]
async fn cancel_with_the_seed_variables_kills_the_grants_tokens() {
    let server = TestServer::start().await;
    let granted = grant(&server, &[]).await;
    let token = granted.value("ACCESS_TOKEN");
    let continue_uri = granted.value("CONTINUE_URI");
    let continue_token = granted.value("CONTINUE_ACCESS_TOKEN");
    let mut env = server.alice_env();
    env.push(("CONTINUE_URI", &continue_uri));
    env.push(("CONTINUE_ACCESS_TOKEN", &continue_token));
    let cancelled = latchkey(&["grant", "cancel"], &env).await;
    cancelled.assert_ok();
    assert_eq!(cancelled.stdout.trim(), "Grant revoked successfully");
    assert!(!server.is_active(&token).await);
    latchkey(&["grant", "cancel"], &env).await.assert_ok();

    // The finalized grant cannot be continued.
    let refused = latchkey(&["grant", "continue"], &env).await;
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("invalid_continuation"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn json_output_is_the_full_response() {
    let server = TestServer::start().await;
    let granted = grant(&server, &["--json"]).await;
    let body = granted.json();
    let token = body["access_token"]["value"]
        .as_str()
        .expect("token")
        .to_string();
    let manage = body["access_token"]["manage"]
        .as_str()
        .expect("manage")
        .to_string();
    assert_eq!(
        body["access_token"]["access"][0]["type"],
        "incoming-payment"
    );
    assert!(body["continue"]["uri"].is_string());
    assert!(body["continue"]["access_token"]["value"].is_string());

    let rotated = latchkey(
        &[
            "token", "rotate", "--url", &manage, "--token", &token, "--json",
        ],
        &server.alice_env(),
    )
    .await;
    rotated.assert_ok();
    let rotated = rotated.json();
    let new_token = rotated["access_token"]["value"].as_str().expect("value");
    assert!(server.is_active(new_token).await);

    let refused = latchkey(
        &[
            "token", "rotate", "--url", &manage, "--token", &token, "--json",
        ],
        &server.alice_env(),
    )
    .await;
    refused.assert_code(1);
    let error = refused.json();
    assert_eq!(error["error"]["code"], "invalid_rotation");
    assert_eq!(error["error"]["status"], 400);
    assert!(error["error"]["description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));

    let new_manage = rotated["access_token"]["manage"].as_str().expect("manage");
    let revoked = latchkey(
        &[
            "token", "revoke", "--url", new_manage, "--token", new_token, "--json",
        ],
        &server.alice_env(),
    )
    .await;
    revoked.assert_ok();
    assert_eq!(revoked.json(), serde_json::json!({"revoked": true}));
}

#[tokio::test]
async fn the_auth_server_is_discovered_from_the_wallet_address() {
    let server = TestServer::start().await;
    let run = latchkey(
        &["grant", "request", "--type", "quote", "--actions", "create"],
        &server.alice_env(),
    )
    .await;
    run.assert_ok();
    assert!(
        run.stderr
            .contains(&format!("auth server {}/", server.public_url)),
        "{}",
        run.stderr
    );
    assert!(server.is_active(&run.value("ACCESS_TOKEN")).await);
}

#[tokio::test]
async fn outgoing_payment_with_consent_then_continue_with_interact_ref() {
    let server = TestServer::start().await;
    let requested = latchkey(
        &[
            "grant",
            "request",
            "--url",
            &server.public_url,
            "--type",
            "outgoing-payment",
            "--finish-uri",
            "http://client.example/return",
            "--debit-amount",
            "500",
            "--asset-code",
            "USD",
            "--asset-scale",
            "2",
        ],
        &server.alice_env(),
    )
    .await;
    requested.assert_ok();
    let values = requested.values();
    assert!(
        !values.contains_key("ACCESS_TOKEN"),
        "no token before consent"
    );
    let redirect = requested.value("INTERACT_REDIRECT");
    assert!(!requested.value("FINISH_NONCE").is_empty());
    assert!(
        requested.stderr.contains("interact-ref"),
        "{}",
        requested.stderr
    );

    let back = Browser::new()
        .consent(&server.public_url, &redirect, "accept")
        .await
        .expect("finish redirect");
    let interact_ref = query(&back, "interact_ref").expect("interact_ref");
    let mut env = server.alice_env();
    let continue_uri = requested.value("CONTINUE_URI");
    let continue_token = requested.value("CONTINUE_ACCESS_TOKEN");
    env.push(("CONTINUE_URI", &continue_uri));
    env.push(("CONTINUE_ACCESS_TOKEN", &continue_token));
    let continued = latchkey(
        &["grant", "continue", "--interact-ref", &interact_ref],
        &env,
    )
    .await;
    continued.assert_ok();
    let token = continued.value("ACCESS_TOKEN");
    assert!(server.is_active(&token).await);
    assert!(continued
        .value("MANAGE_URL")
        .starts_with(&server.public_url));
}

#[tokio::test]
async fn another_token_on_the_manage_url_is_refused_as_invalid_client() {
    let server = TestServer::start().await;
    let a = grant(&server, &[]).await;
    let b = grant(&server, &[]).await;
    let run = latchkey(
        &[
            "token",
            "revoke",
            "--url",
            &a.value("MANAGE_URL"),
            "--token",
            &b.value("ACCESS_TOKEN"),
        ],
        &server.alice_env(),
    )
    .await;
    run.assert_code(1);
    assert!(run.stderr.contains("invalid_client"), "{}", run.stderr);
    assert!(server.is_active(&a.value("ACCESS_TOKEN")).await);
}

#[tokio::test]
async fn private_key_as_pem_text_in_the_environment() {
    let server = TestServer::start().await;
    let pem = std::fs::read_to_string(server.alice_var("PRIVATE_KEY")).expect("key file");
    let wallet = server.alice_var("WALLET_ADDRESS_URL");
    let key_id = server.alice_var("KEY_ID");
    let run = latchkey(
        &[
            "grant",
            "request",
            "--url",
            &server.public_url,
            "--type",
            "incoming-payment",
        ],
        &[
            ("WALLET_ADDRESS_URL", &wallet),
            ("PRIVATE_KEY", &pem),
            ("KEY_ID", &key_id),
        ],
    )
    .await;
    run.assert_ok();
    assert!(server.is_active(&run.value("ACCESS_TOKEN")).await);
}

#[tokio::test]
async fn values_starting_with_a_hyphen_are_values_not_flags() {
    // Tokens are base64url and may start with `-`; PEM text starts with `-----BEGIN`.
    let server = TestServer::start().await;
    let pem = std::fs::read_to_string(server.alice_var("PRIVATE_KEY")).expect("key file");
    let wallet = server.alice_var("WALLET_ADDRESS_URL");
    let key_id = server.alice_var("KEY_ID");
    let granted = latchkey(
        &[
            "grant",
            "request",
            "--url",
            &server.public_url,
            "--type",
            "quote",
            "--wallet-address-url",
            &wallet,
            "--key-id",
            &key_id,
            "--private-key",
            &pem,
        ],
        &[],
    )
    .await;
    granted.assert_ok();
    let manage = granted.value("MANAGE_URL");
    let run = latchkey(
        &[
            "token",
            "revoke",
            "--url",
            &manage,
            "--token",
            "-1Xy_not-the-token",
        ],
        &server.alice_env(),
    )
    .await;
    run.assert_code(1);
    assert!(run.stderr.contains("invalid_client"), "{}", run.stderr);
    let run = latchkey(
        &[
            "grant",
            "cancel",
            "--url",
            &granted.value("CONTINUE_URI"),
            "--token",
            "-x",
        ],
        &server.alice_env(),
    )
    .await;
    run.assert_code(1);
    let run = latchkey(
        &[
            "oauth",
            "revoke",
            "--base-url",
            &server.public_url,
            "--client-id",
            "-id",
            "--client-secret",
            "-secret",
            "--token",
            "-t",
        ],
        &[],
    )
    .await;
    run.assert_code(1);
    assert!(run.stderr.contains("invalid_client"), "{}", run.stderr);
}
