//! Network and configuration failures: each one a distinct, named error, and nothing sent when
//! the configuration is wrong.

mod common;

use latchkey_client::{AuthenticatedClient, ClientConfig, ClientError, PrivateKey};
use latchkey_proto::keys::{generate_signing_key, signing_key_to_pkcs8_pem};
use std::time::Duration;

fn client_for(wallet: &str, timeout: Duration) -> AuthenticatedClient {
    let pem = signing_key_to_pkcs8_pem(&generate_signing_key());
    AuthenticatedClient::new(
        ClientConfig::new(wallet, PrivateKey::Text(pem), "k1").with_timeout(timeout),
    )
    .expect("client")
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_such() {
    let port = common::closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let client = client_for(&format!("{url}/wallet/alice"), Duration::from_secs(5));
    let err = client
        .token()
        .revoke(&format!("{url}/token/abc"), Some("tok"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    assert!(err.is_network() && err.is_retryable());
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // accept and never answer
        }
    });
    let client = client_for(
        &format!("http://{addr}/wallet/alice"),
        Duration::from_millis(300),
    );
    let started = std::time::Instant::now();
    let err = client
        .token()
        .rotate(&format!("http://{addr}/token/abc"), Some("tok"))
        .await
        .expect_err("no answer");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}

#[tokio::test]
async fn bad_urls_are_refused_before_sending() {
    let client = client_for("http://127.0.0.1:1/wallet/alice", Duration::from_secs(1));
    for bad in [
        "",
        "not a url",
        "127.0.0.1:8080/token/x",
        "ftp://a.example/token/x",
    ] {
        let err = client
            .token()
            .revoke(bad, Some("tok"))
            .await
            .expect_err("bad URL");
        assert!(
            matches!(err, ClientError::InvalidUrl { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().contains("token manage URL"), "{err}");
        assert!(err.is_config());
    }
    let err = client
        .grant()
        .cancel("continue", Some("tok"))
        .await
        .expect_err("bad URL");
    assert!(err.to_string().contains("continue URI"), "{err}");
}

#[test]
fn explicit_config_errors() {
    let err = AuthenticatedClient::new(ClientConfig::new(
        "https://w.example/alice",
        PrivateKey::Path("/definitely/not/here.pem".into()),
        "k1",
    ))
    .expect_err("missing key file");
    assert!(matches!(err, ClientError::KeyFile { .. }), "{err:?}");
    assert!(err.to_string().contains("/definitely/not/here.pem"));

    let err = AuthenticatedClient::new(ClientConfig::new(
        "https://w.example/alice",
        PrivateKey::Text("garbage".into()),
        "k1",
    ))
    .expect_err("bad key");
    assert!(matches!(err, ClientError::InvalidKey(_)), "{err:?}");

    let pem = signing_key_to_pkcs8_pem(&generate_signing_key());
    let err = AuthenticatedClient::new(ClientConfig::new(
        "wallet.example/alice",
        PrivateKey::Text(pem.clone()),
        "k1",
    ))
    .expect_err("bad wallet URL");
    assert!(err.to_string().contains("wallet address URL"), "{err}");

    let err = AuthenticatedClient::new(ClientConfig::new(
        "https://w.example/alice",
        PrivateKey::Text(pem),
        " ",
    ))
    .expect_err("empty key id");
    assert!(err.to_string().contains("key id"), "{err}");
}

#[test]
fn an_unreadable_key_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory is not a readable key file.
    let err = AuthenticatedClient::new(ClientConfig::new(
        "https://w.example/alice",
        PrivateKey::Path(dir.path().to_path_buf()),
        "k1",
    ))
    .expect_err("a directory");
    assert!(matches!(err, ClientError::KeyFile { .. }), "{err:?}");
}
