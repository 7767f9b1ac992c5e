//! DESIGN.md invariants for OAuth, through the real binary: an acknowledged token issue or
//! revocation survives `kill -9` right after the response, a revoked token is never active
//! again (1, 2), and no token or secret ever reaches the logs (5).

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("oauth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Starts `latchkey serve` and returns it with its public `host:port`.
fn serve(database: &str) -> (Child, String) {
    serve_logging(database, "warn", Stdio::null())
}

/// Like [`serve`], with a log filter and a destination for stderr.
fn serve_logging(database: &str, filter: &str, stderr: Stdio) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--private-listen",
            "127.0.0.1:0",
            "--database",
            database,
        ])
        .env("LATCHKEY_LOG", filter)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut public = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(url) = line.strip_prefix("PUBLIC_URL=http://") {
            public = Some(url.to_string());
        }
        if line == "READY=1" {
            break;
        }
    }
    (child, public.expect("PUBLIC_URL"))
}

/// One HTTP/1.1 form POST; returns (status, JSON body).
fn post(addr: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response[9..12].parse().expect("status");
    let (_, body) = response.split_once("\r\n\r\n").expect("body");
    (status, serde_json::from_str(body).expect("json"))
}

#[test]
fn issued_and_revoked_tokens_survive_kill_9() {
    let dir = temp_dir("durability");
    let database = format!("sqlite://{}", dir.join("latchkey.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "oauth-client",
            "create",
            "--name",
            "d",
            "--database",
            &database,
        ])
        .output()
        .expect("create");
    assert!(out.status.success());
    let creds: Value = serde_json::from_slice(&out.stdout).expect("json");
    let auth = format!(
        "client_id={}&client_secret={}",
        creds["client_id"].as_str().expect("id"),
        creds["client_secret"].as_str().expect("secret")
    );

    let (mut server, addr) = serve(&database);
    let tokens: Vec<String> = (0..10)
        .map(|_| {
            let (status, body) = post(
                &addr,
                "/oauth/token",
                &format!("{auth}&grant_type=client_credentials"),
            );
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().expect("token").to_string()
        })
        .collect();
    for token in &tokens[..5] {
        let (status, _) = post(&addr, "/oauth/revoke", &format!("{auth}&token={token}"));
        assert_eq!(status, 200);
    }
    server.kill().expect("kill -9"); // SIGKILL on Unix
    server.wait().expect("reaped");

    let (mut server, addr) = serve(&database);
    for (i, token) in tokens.iter().enumerate() {
        let (status, body) = post(&addr, "/oauth/introspect", &format!("{auth}&token={token}"));
        assert_eq!(status, 200);
        assert_eq!(body["active"], i >= 5, "token {i}: {body}");
    }
    server.kill().expect("kill");
    server.wait().expect("reaped");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn logs_never_contain_tokens_or_secrets() {
    let dir = temp_dir("logs");
    let database = format!("sqlite://{}", dir.join("latchkey.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "oauth-client",
            "create",
            "--name",
            "d",
            "--database",
            &database,
        ])
        .env("LATCHKEY_LOG", "trace")
        .output()
        .expect("create");
    assert!(out.status.success());
    let mut logs = String::from_utf8_lossy(&out.stderr).into_owned();
    let creds: Value = serde_json::from_slice(&out.stdout).expect("json");
    let secret = creds["client_secret"].as_str().expect("secret");
    let auth = format!(
        "client_id={}&client_secret={secret}",
        creds["client_id"].as_str().expect("id")
    );

    let log_path = dir.join("serve.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let (mut server, addr) = serve_logging(&database, "trace", Stdio::from(log_file));
    let (_, body) = post(
        &addr,
        "/oauth/token",
        &format!("{auth}&grant_type=client_credentials"),
    );
    let token = body["access_token"].as_str().expect("token").to_string();
    post(&addr, "/oauth/introspect", &format!("{auth}&token={token}"));
    post(&addr, "/oauth/revoke", &format!("{auth}&token={token}"));
    let wrong = format!("{}x", &secret[..secret.len() - 1]);
    let (status, _) = post(
        &addr,
        "/oauth/token",
        &format!(
            "client_id={}&client_secret={wrong}&grant_type=client_credentials",
            creds["client_id"].as_str().expect("id")
        ),
    );
    assert_eq!(status, 401);
    server.kill().expect("kill");
    server.wait().expect("reaped");
    logs.push_str(&std::fs::read_to_string(&log_path).expect("logs"));

    assert!(
        logs.contains("oauth access token revoked"),
        "logging works: {logs}"
    );
    for needle in [secret, wrong.as_str(), token.as_str()] {
        assert!(!logs.contains(needle), "a secret or token reached the logs");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
