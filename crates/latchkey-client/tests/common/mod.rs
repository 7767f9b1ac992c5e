//! A real Latchkey server in development mode, started in-process on `127.0.0.1:0` with a
//! temporary SQLite database, and clients for its sandbox wallets.

#![allow(dead_code)]

use latchkey_client::{AuthenticatedClient, ClientConfig, IntrospectionClient, PrivateKey};
use latchkey_server::config::{Config, ConfigLayer};
use latchkey_server::RunningServer;
use std::path::PathBuf;

/// One sandbox wallet: what a client needs to act as it.
#[derive(Debug, Clone)]
pub struct Wallet {
    pub url: String,
    pub key_id: String,
    pub key_path: PathBuf,
}

impl Wallet {
    pub fn config(&self) -> ClientConfig {
        ClientConfig::new(
            self.url.clone(),
            PrivateKey::Path(self.key_path.clone()),
            self.key_id.clone(),
        )
    }

    pub fn client(&self) -> AuthenticatedClient {
        AuthenticatedClient::new(self.config()).expect("client")
    }
}

pub struct TestServer {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
    pub public_url: String,
    pub private_url: String,
    pub alice: Wallet,
    pub bob: Wallet,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `adjust` has changed the configuration layer.
    pub async fn start_with(adjust: impl FnOnce(&mut ConfigLayer)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut layer = ConfigLayer {
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
        adjust(&mut layer);
        let config = Config::resolve(layer).expect("config");
        let server = latchkey_server::start(config).await.expect("server starts");
        let sandbox = server.sandbox.clone().expect("dev mode has a sandbox");
        let wallet = |name: &str| {
            let w = sandbox.wallet(name).expect("sandbox wallet");
            Wallet {
                url: sandbox.wallet_url(name),
                key_id: w.key_id.clone(),
                key_path: w.key_path.clone(),
            }
        };
        let alice = wallet("alice");
        let bob = wallet("bob");
        TestServer {
            public_url: server.public_url.clone(),
            private_url: server.private_url.clone(),
            server,
            dir,
            alice,
            bob,
        }
    }

    /// The grant endpoint, `{public_url}/`.
    pub fn grant_endpoint(&self) -> String {
        format!("{}/", self.public_url)
    }

    pub fn introspection(&self) -> IntrospectionClient {
        IntrospectionClient::new(&self.private_url).expect("introspection client")
    }

    pub async fn is_active(&self, token: &str) -> bool {
        self.introspection()
            .is_active(token)
            .await
            .expect("introspection answers")
    }
}

/// A port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
