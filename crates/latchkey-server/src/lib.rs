//! The Latchkey authorization server.
//!
//! Layers: [`http`] (parse, authenticate, render) -> [`domain`] (state machines and rules) ->
//! [`store`] (a trait with an SQLite implementation). [`start`] binds both listeners and serves.

pub mod client_keys;
pub mod config;
pub mod domain;
pub mod http;
pub mod janitor;
pub mod oauth;
pub mod sandbox;
pub mod store;
pub mod token_format;

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use client_keys::{ClientKeyResolver, KeyResolverConfig};
use config::Config;
use domain::lifecycle::Lifecycle;
use http::{AppState, HttpSettings};
use sandbox::Sandbox;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The sandbox could not be prepared.
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    /// The key resolver could not be built.
    #[error(transparent)]
    Keys(#[from] client_keys::KeyResolveError),
    /// The data folder could not be created.
    #[error("cannot create the data folder {0}: {1}")]
    DataDir(String, std::io::Error),
}

/// A server that is serving.
pub struct RunningServer {
    /// The public URL (grant endpoint is `{public_url}/`).
    pub public_url: String,
    /// `http://` + the private listener's bound address.
    pub private_url: String,
    /// Bound public address.
    pub public_addr: SocketAddr,
    /// Bound private address.
    pub private_addr: SocketAddr,
    /// The sandbox, in development mode.
    pub sandbox: Option<Arc<Sandbox>>,
    /// Shared state, for embedding and tests.
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
    background: Vec<JoinHandle<()>>,
    feed: Option<Arc<store::postgres_notify::InvalidationFeed>>,
    stores: store::Stores,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        for task in self.background {
            let _ = task.await;
        }
        drop(self.feed);
        self.stores.gnap.close().await;
    }

    /// Waits until the server stops by itself (it does not, unless a listener fails).
    pub async fn wait(self) -> std::io::Result<()> {
        for task in self.tasks {
            task.await.map_err(std::io::Error::other)??;
        }
        Ok(())
    }
}

/// Opens the store, binds both listeners and serves until shut down.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    if config.database.starts_with("sqlite:") && config.dev {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartError::DataDir(config.data_dir.display().to_string(), e))?;
    }
    let stores = store::open_stores(&config.database).await?;
    let store = stores.gnap.clone();
    let public = TcpListener::bind(config.listen)
        .await
        .map_err(|e| StartError::Bind(config.listen, e))?;
    let private = TcpListener::bind(config.private_listen)
        .await
        .map_err(|e| StartError::Bind(config.private_listen, e))?;
    let public_addr = public
        .local_addr()
        .map_err(|e| StartError::Bind(config.listen, e))?;
    let private_addr = private
        .local_addr()
        .map_err(|e| StartError::Bind(config.private_listen, e))?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{public_addr}"));
    let sandbox = if config.dev {
        Some(Arc::new(Sandbox::load_or_create(
            &config.data_dir,
            &public_url,
        )?))
    } else {
        None
    };
    let key_config = KeyResolverConfig {
        ttl: config.key_cache_ttl,
        allow_private: config.dev,
        ..KeyResolverConfig::default()
    };
    // Many nodes share PostgreSQL: caches follow LISTEN/NOTIFY and fail closed without it.
    let feed = if store::is_postgres_url(&config.database) {
        Some(Arc::new(store::postgres_notify::InvalidationFeed::start(
            &config.database,
            store::postgres_notify::FeedSettings::default(),
        )?))
    } else {
        None
    };
    let keys = match &feed {
        Some(feed) => {
            let options = store::postgres::connect_options(
                &config.database,
                &store::postgres::PgSettings::default(),
            )?;
            let publisher = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(options);
            ClientKeyResolver::with_feed_and_publisher(key_config, feed.clone(), Some(publisher))?
        }
        None => ClientKeyResolver::new(key_config)?,
    };
    let state = AppState {
        lifecycle: Lifecycle::new(store, config.lifetimes).with_policy(config.interaction_policy),
        keys,
        settings: Arc::new(HttpSettings {
            public_url: public_url.clone(),
            dev: config.dev,
            signature_window: config.signature_window,
            max_body_bytes: config.max_body_bytes,
            consent_url: config.consent_url.clone(),
            idp_secret: config.idp_secret.clone(),
        }),
        sandbox: sandbox.clone(),
        oauth: oauth::OAuthService::new(
            stores.oauth.clone(),
            oauth::OAuthSettings {
                token_lifetime: config.oauth_token_lifetime,
                limits: config.oauth_limits,
            },
        ),
        admin_token: config
            .admin_token
            .as_deref()
            .map(token_format::TokenHash::of_secret),
    };
    let (shutdown, watcher) = watch::channel(false);
    let serve = |listener: TcpListener, router: axum::Router, mut rx: watch::Receiver<bool>| {
        tokio::spawn(async move {
            // The peer address feeds the per-source limit on failed client authentications.
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
        })
    };
    let tasks = vec![
        serve(public, http::public_router(state.clone()), watcher.clone()),
        serve(
            private,
            http::private_router(state.clone()),
            watcher.clone(),
        ),
    ];
    let janitor = janitor::Janitor::new(
        stores.gnap.clone(),
        Some(stores.oauth.clone()),
        janitor::JanitorSettings {
            retention: config.janitor_retention,
            interval: config.janitor_interval,
            ..janitor::JanitorSettings::default()
        },
    )
    .spawn(watcher);
    tracing::info!(%public_addr, %private_addr, dev = config.dev, "latchkey serving");
    Ok(RunningServer {
        public_url,
        private_url: format!("http://{private_addr}"),
        public_addr,
        private_addr,
        sandbox,
        state,
        shutdown,
        tasks,
        background: vec![janitor],
        feed,
        stores,
    })
}
