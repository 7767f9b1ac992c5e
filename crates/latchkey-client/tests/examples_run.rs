//! Runs the examples (built by `cargo test` next to this test) against a real server, with the
//! seeds' variable names, and checks their effect through introspection.

mod common;

use common::TestServer;
use latchkey_client::access;
use latchkey_client::gnap::{Action, GrantResponse};
use std::path::PathBuf;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/examples_run-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test executable");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is not built; `cargo test -p latchkey-client` builds the examples",
        path.display()
    );
    path
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(name: &str, env: &[(&str, &str)]) -> Output {
    let cwd = tempfile::tempdir().expect("tempdir"); // no stray .env
    let out = tokio::process::Command::new(example(name))
        .current_dir(cwd.path())
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .await
        .expect("example runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn identity(server: &TestServer) -> Vec<(&'static str, String)> {
    vec![
        ("WALLET_ADDRESS_URL", server.alice.url.clone()),
        ("PRIVATE_KEY", server.alice.key_path.display().to_string()),
        ("KEY_ID", server.alice.key_id.clone()),
    ]
}

async fn grant(server: &TestServer) -> GrantResponse {
    let client = server.alice.client();
    let request = client.grant_request(vec![access::incoming_payment(&[Action::Read], None)]);
    client
        .grant()
        .request(&server.grant_endpoint(), &request)
        .await
        .expect("grant")
}

fn with<'a>(
    base: &'a [(&'static str, String)],
    extra: &[(&'static str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    env
}

#[tokio::test]
async fn rotate_then_revoke_token_examples() {
    let server = TestServer::start().await;
    let token = grant(&server).await.access_token.expect("token");
    let id = identity(&server);
    let out = run(
        "rotate_token",
        &with(
            &id,
            &[
                ("ACCESS_TOKEN", &token.value),
                ("TOKEN_MANAGE_URL", &token.manage),
            ],
        ),
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("Rotated access token: AccessToken {"),
        "{}",
        out.stdout
    );
    let value = |key: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} in {}", out.stdout))
            .to_string()
    };
    let (new_token, new_manage) = (value("ACCESS_TOKEN"), value("MANAGE_URL"));
    assert!(!server.is_active(&token.value).await);
    assert!(server.is_active(&new_token).await);

    let out = run(
        "revoke_token",
        &with(
            &id,
            &[
                ("ACCESS_TOKEN", &new_token),
                ("TOKEN_MANAGE_URL", &new_manage),
            ],
        ),
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.trim(), "Access token revoked successfully");
    assert!(!server.is_active(&new_token).await);
}

#[tokio::test]
async fn revoke_grant_example() {
    let server = TestServer::start().await;
    let granted = grant(&server).await;
    let token = granted.access_token.expect("token");
    let id = identity(&server);
    let out = run(
        "revoke_grant",
        &with(
            &id,
            &[
                (
                    "CONTINUE_ACCESS_TOKEN",
                    &granted.continue_.access_token.value,
                ),
                ("CONTINUE_URI", &granted.continue_.uri),
            ],
        ),
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stdout.trim(), "Grant revoked successfully");
    assert!(!server.is_active(&token.value).await);
}

#[tokio::test]
async fn kopokopo_revoke_example() {
    let server = TestServer::start().await;
    let credentials = server
        .server
        .state
        .oauth
        .admin()
        .create("example app", &[])
        .await
        .expect("client");
    let env = [
        ("CLIENT_ID", credentials.client_id.as_str()),
        ("CLIENT_SECRET", credentials.client_secret.as_str()),
        ("BASE_URL", server.public_url.as_str()),
    ];
    let out = run("kopokopo_revoke", &env).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("Access token revoked successfully"),
        "{}",
        out.stdout
    );
    let token = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ACCESS_TOKEN = "))
        .expect("token printed");
    let tokens = latchkey_client::OAuthClient::new(
        &server.public_url,
        &credentials.client_id,
        &credentials.client_secret,
    )
    .expect("client");
    assert!(!tokens.introspect(token).await.expect("introspects").active);
}

#[tokio::test]
async fn examples_name_the_missing_variable() {
    let out = run("revoke_token", &[]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("environment variable WALLET_ADDRESS_URL is not set"),
        "{}",
        out.stderr
    );
    let server = TestServer::start().await;
    let id = identity(&server);
    let out = run("revoke_token", &with(&id, &[])).await;
    assert!(
        out.stderr.contains("ACCESS_TOKEN is not set"),
        "{}",
        out.stderr
    );
    let out = run(
        "revoke_grant",
        &with(&id, &[("CONTINUE_ACCESS_TOKEN", "x")]),
    )
    .await;
    assert!(
        out.stderr.contains("CONTINUE_URI is not set"),
        "{}",
        out.stderr
    );
    let out = run("kopokopo_revoke", &[("CLIENT_ID", "a")]).await;
    assert!(
        out.stderr.contains("CLIENT_SECRET is not set"),
        "{}",
        out.stderr
    );
}
