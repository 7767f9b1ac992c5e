//! Shared by the `cli_*` tests: a real Latchkey server started in-process (development mode,
//! `127.0.0.1:0`, temporary SQLite database), the `latchkey` binary run as a child process with a
//! clean environment, and a minimal cookie-keeping browser for consent pages.

#![allow(dead_code)]

use latchkey_client::IntrospectionClient;
use latchkey_server::config::{Config, ConfigLayer};
use latchkey_server::RunningServer;
use std::collections::HashMap;

pub struct TestServer {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
    pub public_url: String,
    pub private_url: String,
    /// `WALLET_ADDRESS_URL`, `PRIVATE_KEY`, `KEY_ID` of the sandbox wallet alice.
    pub alice: Vec<(String, String)>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let layer = ConfigLayer {
            dev: Some(true),
            listen: Some("127.0.0.1:0".into()),
            private_listen: Some("127.0.0.1:0".into()),
            database: Some(format!(
                "sqlite://{}",
                dir.path().join("latchkey.db").display()
            )),
            data_dir: Some(dir.path().join("data").display().to_string()),
            ..ConfigLayer::default()
        };
        let server = latchkey_server::start(Config::resolve(layer).expect("config"))
            .await
            .expect("server starts");
        let sandbox = server.sandbox.clone().expect("sandbox");
        let wallet = sandbox.wallet("alice").expect("alice");
        let alice = vec![
            (
                "WALLET_ADDRESS_URL".to_string(),
                sandbox.wallet_url("alice"),
            ),
            (
                "PRIVATE_KEY".to_string(),
                wallet.key_path.display().to_string(),
            ),
            ("KEY_ID".to_string(), wallet.key_id.clone()),
        ];
        TestServer {
            public_url: server.public_url.clone(),
            private_url: server.private_url.clone(),
            server,
            dir,
            alice,
        }
    }

    pub fn alice_env(&self) -> Vec<(&str, &str)> {
        self.alice
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    pub fn alice_var(&self, name: &str) -> String {
        self.alice
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .expect("variable")
    }

    pub async fn is_active(&self, token: &str) -> bool {
        IntrospectionClient::new(&self.private_url)
            .expect("introspection client")
            .is_active(token)
            .await
            .expect("introspection answers")
    }
}

/// What a `latchkey` run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `KEY = value` lines of stdout.
    pub fn values(&self) -> HashMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    pub fn value(&self, key: &str) -> String {
        self.values().remove(key).unwrap_or_else(|| {
            panic!(
                "{key} not in output:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    pub fn assert_ok(&self) -> &Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `latchkey ARGS` with exactly `env` as its environment (plus nothing inherited).
pub async fn latchkey(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .env("LATCHKEY_LOG", "warn")
        .output()
        .await
        .expect("latchkey runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Follows nothing by itself; keeps cookies by hand.
pub struct Browser {
    http: reqwest::Client,
    cookies: Vec<String>,
}

impl Browser {
    pub fn new() -> Browser {
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

    /// Approves (or denies) the grant behind `redirect`; returns where the finish step sends
    /// the browser, if it redirects.
    pub async fn consent(
        &mut self,
        public_url: &str,
        redirect: &str,
        decision: &str,
    ) -> Option<String> {
        let absolute = |l: String| {
            if l.starts_with("http") {
                l
            } else {
                format!("{public_url}{l}")
            }
        };
        let (status, location, body) = self.get(redirect).await;
        assert_eq!(status, 302, "interaction start: {body}");
        let consent_url = absolute(location.expect("consent location"));
        let (status, _, page) = self.get(&consent_url).await;
        assert_eq!(status, 200, "{page}");
        let marker = "name=\"csrf\" value=\"";
        let start = page.find(marker).expect("csrf field") + marker.len();
        let csrf = page[start..].split('"').next().expect("csrf").to_string();
        let (status, location, body) = self
            .post(&consent_url, &[("csrf", &csrf), ("decision", decision)])
            .await;
        assert!((300..400).contains(&status), "{status} {body}");
        let (status, location, _) = self.get(&absolute(location.expect("finish"))).await;
        (status == 302).then_some(location).flatten()
    }
}

/// The value of query parameter `name` of `url`.
pub fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
