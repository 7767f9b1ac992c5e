//! `latchkey oauth-client create|list|show|disable|enable|rotate-secret|delete` against an
//! SQLite database that a running server uses at the same time.

use latchkey_server::config::{Config, ConfigLayer};
use latchkey_server::oauth::Credentials;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Output;

/// Runs `latchkey oauth-client ARGS` without blocking the test's runtime: the server under
/// test runs on it, and a server frozen in the middle of a store call could hold SQLite's
/// write lock for as long as the command runs.
async fn latchkey(args: &[&str], database: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("oauth-client")
        .args(args)
        .args(["--database", database])
        .env_remove("LATCHKEY_DATABASE_URL")
        .env("LATCHKEY_LOG", "warn")
        .output()
        .await
        .expect("run latchkey")
}

fn json_ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("oauth-client-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
async fn manage_clients_while_the_server_runs() {
    let dir = temp_dir("lifecycle");
    let database = format!("sqlite://{}", dir.join("latchkey.db").display());
    let server = latchkey_server::start(
        Config::resolve(ConfigLayer {
            dev: Some(false),
            listen: Some("127.0.0.1:0".into()),
            private_listen: Some("127.0.0.1:0".into()),
            database: Some(database.clone()),
            ..ConfigLayer::default()
        })
        .expect("config"),
    )
    .await
    .expect("server");
    let oauth = server.state.oauth.clone();

    // create: {"client_id", "client_secret"} on stdout, the secret shown once.
    let out = latchkey(
        &[
            "create", "--name", "Shop", "--scope", "read", "--scope", "write",
        ],
        &database,
    )
    .await;
    let created = json_ok(&out);
    let fields: Vec<&String> = created.as_object().expect("object").keys().collect();
    assert_eq!(fields, ["client_id", "client_secret"]);
    let id = created["client_id"].as_str().expect("id").to_string();
    let secret = created["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert!(secret.len() >= 43, "≥ 256 bits");
    assert!(String::from_utf8_lossy(&out.stderr).contains("only once"));

    // The running server sees the new client at once.
    fn creds<'a>(id: &'a str, secret: &'a str) -> Credentials<'a> {
        Credentials {
            client_id: Some(id),
            client_secret: Some(secret),
        }
    }
    let client = oauth
        .authenticate(creds(&id, &secret), None)
        .await
        .expect("auth");
    assert_eq!(client.scopes, ["read", "write"]);
    let token = oauth.issue(&client, None).await.expect("token");
    let token = token.value.expose().to_string();

    // list and show never print the secret.
    let out = latchkey(&["list"], &database).await;
    let list = json_ok(&out);
    assert_eq!(list[0]["client_id"], id.as_str());
    assert_eq!(list[0]["name"], "Shop");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&secret));
    let shown = json_ok(&latchkey(&["show", &id], &database).await);
    assert_eq!(shown, list[0]);

    // rotate-secret: the old secret stops working, the token survives.
    let rotated = json_ok(&latchkey(&["rotate-secret", &id], &database).await);
    let new_secret = rotated["client_secret"]
        .as_str()
        .expect("secret")
        .to_string();
    assert_ne!(new_secret, secret);
    assert!(oauth.authenticate(creds(&id, &secret), None).await.is_err());
    oauth
        .authenticate(creds(&id, &new_secret), None)
        .await
        .expect("new secret works");
    assert!(oauth.token_info(&token).await.is_ok());

    // disable: revokes every token, refuses the client.
    let disabled = json_ok(&latchkey(&["disable", &id], &database).await);
    assert_eq!(disabled["revoked_tokens"], 1);
    assert!(oauth.token_info(&token).await.is_err());
    assert!(oauth
        .authenticate(creds(&id, &new_secret), None)
        .await
        .is_err());

    // enable, then delete.
    json_ok(&latchkey(&["enable", &id], &database).await);
    oauth
        .authenticate(creds(&id, &new_secret), None)
        .await
        .expect("enabled again");
    let deleted = json_ok(&latchkey(&["delete", &id], &database).await);
    assert_eq!(deleted["deleted"], true);
    assert!(oauth
        .authenticate(creds(&id, &new_secret), None)
        .await
        .is_err());
    assert_eq!(
        json_ok(&latchkey(&["list"], &database).await),
        serde_json::json!([])
    );

    // Unknown ids and bad input fail with a message and a non-zero exit.
    for args in [
        vec!["show", id.as_str()],
        vec!["disable", "nope"],
        vec!["rotate-secret", "nope"],
        vec!["delete", "nope"],
    ] {
        let out = latchkey(&args, &database).await;
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("no OAuth client"));
    }
    let out = latchkey(
        &["create", "--name", "x", "--scope", "bad scope"],
        &database,
    )
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("scope"));
    let out = latchkey(&["create"], &database).await;
    assert!(!out.status.success(), "--name is required");

    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
