//! Support for the PostgreSQL tests: a fresh database per test, and a TCP proxy that can be cut
//! (to play a database outage, or a dead load balancer target) and can spread connections over
//! several targets round-robin (a small load balancer).
#![allow(dead_code)]

use sqlx::{Connection, Executor};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The maintenance database URL (`LATCHKEY_TEST_POSTGRES_URL`).
pub fn admin_url() -> String {
    std::env::var("LATCHKEY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test and dropped (with its connections) at the end.
pub struct PgTestDb {
    /// URL of the test database.
    pub url: String,
    /// Its name.
    pub name: String,
}

impl PgTestDb {
    /// Creates `latchkey_test_<random>`.
    pub async fn create() -> PgTestDb {
        let name = format!("latchkey_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut admin = sqlx::PgConnection::connect(&admin_url())
            .await
            .expect("PostgreSQL must run at LATCHKEY_TEST_POSTGRES_URL (default 127.0.0.1:5432)");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let url = Self::url_via(&name, None);
        PgTestDb { url, name }
    }

    /// The URL of this database reached through `addr` (a proxy) instead of the real server.
    pub fn url_through(&self, addr: SocketAddr) -> String {
        Self::url_via(&self.name, Some(addr))
    }

    fn url_via(name: &str, addr: Option<SocketAddr>) -> String {
        let mut url = url::Url::parse(&admin_url()).expect("admin URL parses");
        url.set_path(&format!("/{name}"));
        if let Some(addr) = addr {
            url.set_host(Some(&addr.ip().to_string())).expect("host");
            url.set_port(Some(addr.port())).expect("port");
        }
        url.to_string()
    }

    /// The address of the real server.
    pub fn server_addr() -> SocketAddr {
        let url = url::Url::parse(&admin_url()).expect("admin URL parses");
        let host = url.host_str().unwrap_or("127.0.0.1").to_string();
        let port = url.port().unwrap_or(5432);
        format!("{host}:{port}")
            .parse()
            .expect("PostgreSQL at an IP address")
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// A TCP proxy on `127.0.0.1:0`. Each accepted connection goes to the next target, round-robin.
/// [`TcpProxy::cut`] kills every open connection and refuses new ones until [`TcpProxy::restore`];
/// [`TcpProxy::freeze`] stops forwarding without closing anything (a network partition: the
/// peers notice only by timeouts).
pub struct TcpProxy {
    /// Where the proxy listens.
    pub addr: SocketAddr,
    targets: Arc<Mutex<Vec<SocketAddr>>>,
    served: Arc<Mutex<std::collections::HashMap<SocketAddr, usize>>>,
    cut: Arc<AtomicBool>,
    frozen: tokio::sync::watch::Sender<bool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts a proxy in front of `targets` (which may be set later, see
    /// [`TcpProxy::set_targets`]; until then connections are refused).
    pub async fn start(targets: Vec<SocketAddr>) -> TcpProxy {
        let targets = Arc::new(Mutex::new(targets));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(AtomicUsize::new(0));
        let (frozen, frozen_rx) = tokio::sync::watch::channel(false);
        let served: Arc<Mutex<std::collections::HashMap<SocketAddr, usize>>> = Arc::default();
        let acceptor = {
            let served = served.clone();
            let cut = cut.clone();
            let connections = connections.clone();
            let targets = targets.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if cut.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let target = {
                        let targets = targets.lock().expect("lock");
                        if targets.is_empty() {
                            continue;
                        }
                        targets[next.fetch_add(1, Ordering::SeqCst) % targets.len()]
                    };
                    *served.lock().expect("lock").entry(target).or_default() += 1;
                    let mut frozen = frozen_rx.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                            let froze = tokio::select! {
                                _ = copy => false,
                                r = frozen.wait_for(|f| *f) => r.is_ok(),
                            };
                            if froze {
                                // Keep both sockets open, forward nothing, until cut.
                                std::future::pending::<()>().await;
                            }
                        }
                    });
                    let mut open = connections.lock().expect("lock");
                    open.retain(|t| !t.is_finished());
                    open.push(task);
                }
            })
        };
        TcpProxy {
            addr,
            targets,
            served,
            cut,
            frozen,
            connections,
            acceptor,
        }
    }

    /// How many connections went to `target`.
    pub fn served(&self, target: SocketAddr) -> usize {
        self.served
            .lock()
            .expect("lock")
            .get(&target)
            .copied()
            .unwrap_or(0)
    }

    /// Replaces the targets new connections are spread over.
    pub fn set_targets(&self, targets: Vec<SocketAddr>) {
        *self.targets.lock().expect("lock") = targets;
    }

    /// Kills every proxied connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.connections.lock().expect("lock").drain(..) {
            task.abort();
        }
    }

    /// Stops forwarding on every connection, open or new, without closing any.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Accepts and forwards connections again (frozen ones stay frozen until cut or dropped).
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.frozen.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.acceptor.abort();
    }
}
