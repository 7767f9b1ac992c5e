//! Every error path of the client commands: a missing variable (named, with its flag), a bad
//! URL, an unreadable or invalid key, an unreachable or silent server; each with its exit status
//! (2 configuration, 3 network) and a clear message.

mod cli_common;

use cli_common::{closed_port, latchkey, TestServer};

const FAKE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n";

fn identity(wallet: &str) -> Vec<(&'static str, String)> {
    vec![
        ("WALLET_ADDRESS_URL", wallet.to_string()),
        ("PRIVATE_KEY", FAKE_PEM.to_string()),
        ("KEY_ID", "k1".to_string()),
    ]
}

fn borrow<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn expect_missing(args: &[&str], env: &[(&str, &str)], variable: &str, flag: &str) {
    let run = latchkey(args, env).await;
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!("{variable} is not set")),
        "{args:?}: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains(flag),
        "{args:?} names {flag}: {}",
        run.stderr
    );
}

#[tokio::test]
async fn each_missing_variable_is_named_with_its_flag() {
    let id = identity("https://wallet.example/alice");
    let full = borrow(&id);
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut env = full.clone();
        env.extend_from_slice(extra);
        env
    };
    let manage = [("TOKEN_MANAGE_URL", "https://as.example/token/x")];
    expect_missing(&["token", "revoke"], &full, "TOKEN_MANAGE_URL", "--url").await;
    expect_missing(
        &["token", "rotate"],
        &with(&manage),
        "ACCESS_TOKEN",
        "--token",
    )
    .await;
    let token = [
        ("TOKEN_MANAGE_URL", "https://as.example/token/x"),
        ("ACCESS_TOKEN", "t"),
    ];
    for (variable, flag) in [
        ("WALLET_ADDRESS_URL", "--wallet-address-url"),
        ("PRIVATE_KEY", "--private-key"),
        ("KEY_ID", "--key-id"),
    ] {
        let env: Vec<_> = with(&token)
            .into_iter()
            .filter(|(k, _)| *k != variable)
            .collect();
        expect_missing(&["token", "revoke"], &env, variable, flag).await;
    }
    expect_missing(&["grant", "cancel"], &full, "CONTINUE_URI", "--url").await;
    expect_missing(
        &["grant", "continue"],
        &with(&[("CONTINUE_URI", "https://as.example/continue/x")]),
        "CONTINUE_ACCESS_TOKEN",
        "--token",
    )
    .await;
    expect_missing(&["oauth", "token"], &[], "BASE_URL", "--base-url").await;
    expect_missing(
        &["oauth", "token"],
        &[("BASE_URL", "https://k.example")],
        "CLIENT_ID",
        "--client-id",
    )
    .await;
    expect_missing(
        &["oauth", "token"],
        &[("BASE_URL", "https://k.example"), ("CLIENT_ID", "id")],
        "CLIENT_SECRET",
        "--client-secret",
    )
    .await;
    expect_missing(&["oauth", "revoke"], &[], "ACCESS_TOKEN", "--token").await;
}

#[tokio::test]
async fn bad_urls_are_configuration_errors() {
    let id = identity("https://wallet.example/alice");
    let env = borrow(&id);
    let run = latchkey(
        &[
            "token",
            "revoke",
            "--url",
            "as.example/token/x",
            "--token",
            "t",
        ],
        &env,
    )
    .await;
    run.assert_code(2);
    assert!(
        run.stderr.contains("invalid URL `as.example/token/x`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("token manage URL"), "{}", run.stderr);

    let bad_wallet = identity("wallet.example/alice");
    let run = latchkey(
        &[
            "token",
            "revoke",
            "--url",
            "https://as.example/token/x",
            "--token",
            "t",
        ],
        &borrow(&bad_wallet),
    )
    .await;
    run.assert_code(2);
    assert!(
        run.stderr.contains("invalid WALLET_ADDRESS_URL"),
        "{}",
        run.stderr
    );

    let run = latchkey(
        &[
            "oauth",
            "token",
            "--base-url",
            "k.example",
            "--client-id",
            "a",
            "--client-secret",
            "b",
        ],
        &[],
    )
    .await;
    run.assert_code(2);
    assert!(run.stderr.contains("invalid URL"), "{}", run.stderr);
}

#[tokio::test]
async fn unreadable_and_invalid_keys_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.pem");
    let missing_text = missing.display().to_string();
    let args = [
        "token",
        "revoke",
        "--url",
        "https://as.example/token/x",
        "--token",
        "t",
    ];
    let run = latchkey(
        &args,
        &[
            ("WALLET_ADDRESS_URL", "https://wallet.example/alice"),
            ("PRIVATE_KEY", &missing_text),
            ("KEY_ID", "k1"),
        ],
    )
    .await;
    run.assert_code(2);
    assert!(run.stderr.contains("invalid PRIVATE_KEY"), "{}", run.stderr);
    assert!(run.stderr.contains(&missing_text), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot read key file"),
        "{}",
        run.stderr
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let garbage_text = garbage.display().to_string();
    let run = latchkey(
        &[&args[..], &["--private-key", &garbage_text]].concat(),
        &[
            ("WALLET_ADDRESS_URL", "https://wallet.example/alice"),
            ("KEY_ID", "k1"),
        ],
    )
    .await;
    run.assert_code(2);
    assert!(
        run.stderr.contains("invalid PRIVATE_KEY (--private-key)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("PKCS#8"), "{}", run.stderr);
}

#[tokio::test]
async fn an_unreachable_server_exits_3() {
    let port = closed_port();
    let base = format!("http://127.0.0.1:{port}");
    let id = identity(&format!("{base}/wallet/alice"));
    let manage = format!("{base}/token/x");
    let run = latchkey(
        &["token", "revoke", "--url", &manage, "--token", "t"],
        &borrow(&id),
    )
    .await;
    run.assert_code(3);
    assert!(
        run.stderr.contains(&format!("cannot reach {manage}")),
        "{}",
        run.stderr
    );

    let run = latchkey(
        &[
            "oauth",
            "token",
            "--base-url",
            &base,
            "--client-id",
            "a",
            "--client-secret",
            "b",
        ],
        &[],
    )
    .await;
    run.assert_code(3);
    assert!(run.stderr.contains("cannot reach"), "{}", run.stderr);
    // Discovery of the auth server from the wallet address fails the same way.
    let run = latchkey(&["grant", "request", "--type", "quote"], &borrow(&id)).await;
    run.assert_code(3);
}

#[tokio::test]
async fn a_silent_server_times_out_with_exit_3() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let id = identity(&format!("http://{addr}/wallet/alice"));
    let manage = format!("http://{addr}/token/x");
    let started = std::time::Instant::now();
    let run = latchkey(
        &[
            "token",
            "rotate",
            "--url",
            &manage,
            "--token",
            "t",
            "--timeout",
            "1",
        ],
        &borrow(&id),
    )
    .await;
    run.assert_code(3);
    assert!(run.stderr.contains("timed out after 1 s"), "{}", run.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    hold.abort();
}

#[tokio::test]
async fn bad_arguments_are_usage_errors() {
    let id = identity("https://wallet.example/alice");
    let env = borrow(&id);
    let run = latchkey(
        &[
            "grant",
            "request",
            "--url",
            "https://as.example/",
            "--type",
            "wire",
        ],
        &env,
    )
    .await;
    run.assert_code(2);
    assert!(run.stderr.contains("wire"), "{}", run.stderr);
    let run = latchkey(
        &[
            "grant",
            "request",
            "--url",
            "https://as.example/",
            "--type",
            "quote",
            "--actions",
            "fly",
        ],
        &env,
    )
    .await;
    run.assert_code(2);
    assert!(
        run.stderr.contains("unknown action `fly`"),
        "{}",
        run.stderr
    );
    let run = latchkey(
        &[
            "grant",
            "request",
            "--url",
            "https://as.example/",
            "--type",
            "quote",
            "--actions",
            "list",
        ],
        &env,
    )
    .await;
    run.assert_code(2);
    assert!(
        run.stderr.contains("not allowed for quote"),
        "{}",
        run.stderr
    );
    let run = latchkey(
        &[
            "grant",
            "request",
            "--url",
            "https://as.example/",
            "--type",
            "outgoing-payment",
            "--debit-amount",
            "5",
        ],
        &env,
    )
    .await;
    run.assert_code(2);
    assert!(run.stderr.contains("--asset-code"), "{}", run.stderr);
}

#[tokio::test]
async fn refusals_from_a_real_server_exit_1_with_code_and_description() {
    let server = TestServer::start().await;
    // A key the wallet address does not publish.
    let mut env = server.alice_env();
    env.retain(|(k, _)| *k != "KEY_ID");
    env.push(("KEY_ID", "not-alices-key"));
    let run = latchkey(
        &[
            "grant",
            "request",
            "--url",
            &server.public_url,
            "--type",
            "incoming-payment",
            "--json",
        ],
        &env,
    )
    .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("code: invalid_client"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("not-alices-key"), "{}", run.stderr);
    assert_eq!(run.json()["error"]["code"], "invalid_client");
    assert_eq!(run.json()["error"]["status"], 401);

    let run = latchkey(
        &[
            "token",
            "revoke",
            "--url",
            &format!("{}/token/AAAAAAAAAAAAAAAAAAAAAA", server.public_url),
            "--token",
            "t",
        ],
        &server.alice_env(),
    )
    .await;
    run.assert_code(1);
    assert!(run.stderr.contains("HTTP 401"), "{}", run.stderr);
    assert!(
        run.stderr.contains("no access token is managed"),
        "{}",
        run.stderr
    );
}
