//! A cluster: three servers (`latchkey_server::start`) on one PostgreSQL database, behind a
//! round-robin TCP proxy that plays the load balancer (one connection per request, so requests
//! spread over the nodes). The Open Payments lifecycle runs through the proxy, and after every
//! acknowledged change, introspection on *every* node's private listener agrees with it at once.

mod pg_support;
mod support;

use latchkey_server::config::{Config, ConfigLayer};
use latchkey_server::RunningServer;
use pg_support::{PgTestDb, TcpProxy};
use serde_json::{json, Value};
use std::sync::Arc;
use support::{incoming, Signer};
use tokio::sync::Barrier;

struct Cluster {
    nodes: Vec<RunningServer>,
    proxy: TcpProxy,
    public_url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _db: PgTestDb,
}

impl Cluster {
    async fn start(size: usize) -> Cluster {
        let db = PgTestDb::create().await;
        let proxy = TcpProxy::start(Vec::new()).await;
        let public_url = format!("http://{}", proxy.addr);
        // One data folder: the nodes share the sandbox's wallet keys, as nodes behind a load
        // balancer share their configuration.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::with_capacity(size);
        for _ in 0..size {
            let layer = ConfigLayer {
                dev: Some(true),
                listen: Some("127.0.0.1:0".into()),
                private_listen: Some("127.0.0.1:0".into()),
                database: Some(db.url.clone()),
                data_dir: Some(dir.path().to_string_lossy().into_owned()),
                public_url: Some(public_url.clone()),
                ..ConfigLayer::default()
            };
            let config = Config::resolve(layer).expect("config");
            nodes.push(latchkey_server::start(config).await.expect("node starts"));
        }
        proxy.set_targets(nodes.iter().map(|n| n.public_addr).collect());
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        Cluster {
            nodes,
            proxy,
            public_url,
            http,
            _dir: dir,
            _db: db,
        }
    }

    fn alice(&self) -> Signer {
        let sandbox = self.nodes[0].sandbox.as_ref().expect("dev mode");
        let wallet = sandbox.wallet("alice").expect("alice");
        Signer {
            http: self.http.clone(),
            key: wallet.key.clone(),
            key_id: wallet.key_id.clone(),
            wallet_address: sandbox.wallet_url("alice"),
        }
    }

    /// `active` as introspection on each node reports it.
    async fn active_on_each_node(&self, token: &str) -> Vec<bool> {
        let mut seen = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let response = self
                .http
                .post(format!("{}/", node.private_url))
                .json(&json!({ "access_token": token }))
                .send()
                .await
                .expect("introspect");
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.expect("json");
            seen.push(body["active"] == true);
        }
        seen
    }

    async fn assert_everywhere(&self, token: &str, active: bool, step: &str) {
        let seen = self.active_on_each_node(token).await;
        assert_eq!(
            seen,
            vec![active; self.nodes.len()],
            "{step}: every node must report active = {active}"
        );
    }

    async fn shutdown(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
        self.proxy.cut();
    }
}

fn text(v: &Value) -> String {
    v.as_str().expect("string").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_agrees_with_each_acknowledged_change() {
    let cluster = Cluster::start(3).await;
    let alice = cluster.alice();
    let grant_url = format!("{}/", cluster.public_url);
    let body = json!({
        "access_token": { "access": incoming(&alice.wallet_address) },
        "client": alice.wallet_address,
    });
    for round in 0..10 {
        // Grant, through whichever node the proxy picks.
        let grant = alice.send("POST", &grant_url, None, Some(&body)).await;
        assert_eq!(grant.status, 200, "round {round}: {}", grant.text);
        let value = text(&grant.body["access_token"]["value"]);
        let manage = text(&grant.body["access_token"]["manage"]);
        assert!(manage.starts_with(&cluster.public_url));
        cluster.assert_everywhere(&value, true, "after grant").await;

        // Rotate: the old value dies and the new one lives, on every node, at once.
        let rotated = alice.send("POST", &manage, Some(&value), None).await;
        assert_eq!(rotated.status, 200, "round {round}: {}", rotated.text);
        let new_value = text(&rotated.body["access_token"]["value"]);
        let new_manage = text(&rotated.body["access_token"]["manage"]);
        cluster
            .assert_everywhere(&value, false, "old value after rotate")
            .await;
        cluster
            .assert_everywhere(&new_value, true, "new value after rotate")
            .await;

        // Revoke (another node, probably): dead everywhere as soon as it is acknowledged.
        let revoked = alice
            .send("DELETE", &new_manage, Some(&new_value), None)
            .await;
        assert_eq!(revoked.status, 204, "round {round}: {}", revoked.text);
        cluster
            .assert_everywhere(&new_value, false, "after revoke")
            .await;
        // And again, idempotently, wherever it lands.
        let again = alice
            .send("DELETE", &new_manage, Some(&new_value), None)
            .await;
        assert_eq!(again.status, 204, "round {round}: {}", again.text);

        // Cancel a second grant: its token is dead everywhere.
        let grant = alice.send("POST", &grant_url, None, Some(&body)).await;
        assert_eq!(grant.status, 200, "round {round}: {}", grant.text);
        let value = text(&grant.body["access_token"]["value"]);
        let continue_uri = text(&grant.body["continue"]["uri"]);
        let continue_token = text(&grant.body["continue"]["access_token"]["value"]);
        cluster
            .assert_everywhere(&value, true, "second grant")
            .await;
        let cancelled = alice
            .send("DELETE", &continue_uri, Some(&continue_token), None)
            .await;
        assert_eq!(cancelled.status, 204, "round {round}: {}", cancelled.text);
        cluster
            .assert_everywhere(&value, false, "after cancel")
            .await;
    }
    for node in &cluster.nodes {
        assert!(
            cluster.proxy.served(node.public_addr) >= 10,
            "the proxy spread requests over every node"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_through_different_nodes_leave_one_live_successor() {
    const CALLERS: usize = 6;
    let cluster = Cluster::start(3).await;
    let alice = cluster.alice();
    let grant_url = format!("{}/", cluster.public_url);
    let body = json!({
        "access_token": { "access": incoming(&alice.wallet_address) },
        "client": alice.wallet_address,
    });
    for round in 0..10 {
        let grant = alice.send("POST", &grant_url, None, Some(&body)).await;
        assert_eq!(grant.status, 200, "{}", grant.text);
        let value = text(&grant.body["access_token"]["value"]);
        let manage = text(&grant.body["access_token"]["manage"]);
        let barrier = Arc::new(Barrier::new(CALLERS));
        let mut calls = Vec::new();
        for _ in 0..CALLERS {
            let alice = alice.clone();
            let barrier = barrier.clone();
            let (value, manage) = (value.clone(), manage.clone());
            calls.push(tokio::spawn(async move {
                barrier.wait().await;
                alice.send("POST", &manage, Some(&value), None).await
            }));
        }
        let mut successors = Vec::new();
        for call in calls {
            let reply = call.await.expect("task");
            match reply.status {
                200 => successors.push(text(&reply.body["access_token"]["value"])),
                400 | 401 => {}
                other => panic!("round {round}: unexpected {other}: {}", reply.text),
            }
        }
        assert_eq!(
            successors.len(),
            1,
            "round {round}: exactly one rotation wins"
        );
        cluster
            .assert_everywhere(&value, false, "rotated-away value")
            .await;
        cluster
            .assert_everywhere(&successors[0], true, "the one successor")
            .await;
    }
    cluster.shutdown().await;
}
