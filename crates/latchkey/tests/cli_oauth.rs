//! `latchkey oauth token|revoke|introspect|info` against a real server's `/oauth/*` endpoints,
//! with the Kopo Kopo snippets' variables (`CLIENT_ID`, `CLIENT_SECRET`, `BASE_URL`).

mod cli_common;

use cli_common::{latchkey, TestServer};

async fn register(server: &TestServer) -> (String, String) {
    let credentials = server
        .server
        .state
        .oauth
        .admin()
        .create("cli test app", &[])
        .await
        .expect("client registered");
    (credentials.client_id, credentials.client_secret)
}

#[tokio::test]
async fn token_introspect_info_revoke() {
    let server = TestServer::start().await;
    let (id, secret) = register(&server).await;
    let env = [
        ("CLIENT_ID", id.as_str()),
        ("CLIENT_SECRET", secret.as_str()),
        ("BASE_URL", server.public_url.as_str()),
    ];
    let issued = latchkey(&["oauth", "token"], &env).await;
    issued.assert_ok();
    let token = issued.value("ACCESS_TOKEN");
    assert_eq!(issued.value("TOKEN_TYPE"), "Bearer");
    assert!(issued.value("EXPIRES_IN").parse::<u64>().expect("number") > 0);

    let mut with_token = env.to_vec();
    with_token.push(("ACCESS_TOKEN", &token));
    let introspected = latchkey(&["oauth", "introspect"], &with_token).await;
    introspected.assert_ok();
    assert_eq!(introspected.value("ACTIVE"), "true");
    assert_eq!(introspected.value("CLIENT_ID"), id);

    let info = latchkey(&["oauth", "info"], &with_token).await;
    info.assert_ok();
    assert_eq!(info.value("APPLICATION"), id);

    let revoked = latchkey(&["oauth", "revoke"], &with_token).await;
    revoked.assert_ok();
    assert_eq!(revoked.stdout.trim(), "Access token revoked successfully");

    let introspected = latchkey(&["oauth", "introspect", "--json"], &with_token).await;
    introspected.assert_ok();
    assert_eq!(introspected.json()["active"], false);
    let info = latchkey(&["oauth", "info"], &with_token).await;
    info.assert_code(1);
    assert!(info.stderr.contains("invalid_token"), "{}", info.stderr);
}

#[tokio::test]
async fn basic_auth_and_json() {
    let server = TestServer::start().await;
    let (id, secret) = register(&server).await;
    let issued = latchkey(
        &[
            "oauth",
            "token",
            "--basic",
            "--json",
            "--base-url",
            &server.public_url,
            "--client-id",
            &id,
            "--client-secret",
            &secret,
        ],
        &[],
    )
    .await;
    issued.assert_ok();
    let body = issued.json();
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().expect("token");
    let revoked = latchkey(
        &[
            "oauth",
            "revoke",
            "--basic",
            "--json",
            "--base-url",
            &server.public_url,
            "--client-id",
            &id,
            "--client-secret",
            &secret,
            "--token",
            token,
        ],
        &[],
    )
    .await;
    revoked.assert_ok();
    assert_eq!(revoked.json(), serde_json::json!({"revoked": true}));
}

#[tokio::test]
async fn wrong_secret_exits_1_with_invalid_client() {
    let server = TestServer::start().await;
    let (id, _) = register(&server).await;
    let run = latchkey(
        &[
            "oauth",
            "token",
            "--base-url",
            &server.public_url,
            "--client-id",
            &id,
            "--client-secret",
            "wrong",
        ],
        &[],
    )
    .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("code: invalid_client"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("HTTP 401"), "{}", run.stderr);
}
