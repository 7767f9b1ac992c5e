//! HTTP: parse, authenticate, render. No business rules here; those live in `domain`.
//!
//! Two routers: the **public** one (GNAP grant, continuation and token management, sandbox
//! wallets, the OAuth endpoints under `/oauth/`) and the **private** one (GNAP introspection,
//! health, the admin API under `/admin/`), so that network placement alone keeps GNAP
//! introspection and administration off the internet. OAuth introspection stays public: the
//! Kopo Kopo SDKs build every OAuth URL from one base URL, and it authenticates the client.

pub mod admin;
pub mod auth;
pub mod error;
pub mod gnap;
pub mod idp;
pub mod interaction;
pub mod oauth;
pub mod private;
pub mod request;
pub mod sandbox;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client_keys::ClientKeyResolver;
use crate::domain::lifecycle::Lifecycle;
use crate::sandbox::Sandbox;

/// Shared state of both routers.
#[derive(Clone)]
pub struct AppState {
    /// The token lifecycle.
    pub lifecycle: Lifecycle,
    /// Client key resolver.
    pub keys: ClientKeyResolver,
    /// Settings the handlers need.
    pub settings: Arc<HttpSettings>,
    /// Sandbox wallets (development mode only).
    pub sandbox: Option<Arc<Sandbox>>,
    /// OAuth 2.0 clients and tokens (Kopo Kopo style).
    pub oauth: crate::oauth::OAuthService,
    /// SHA-256 of the admin API token ([`TokenHash::of_secret`](crate::token_format::TokenHash::of_secret)); `None` turns the admin API off.
    pub admin_token: Option<crate::token_format::TokenHash>,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Public base URL, without a trailing slash; the grant endpoint is `{public_url}/`.
    pub public_url: String,
    /// Development mode.
    pub dev: bool,
    /// Accepted age (and future skew) of a signature's `created`.
    pub signature_window: Duration,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// An identity provider's consent page; without one, the built-in page is used.
    pub consent_url: Option<String>,
    /// Secret the identity provider sends as `x-idp-secret`; without one, the IdP API is off.
    pub idp_secret: Option<String>,
}

impl HttpSettings {
    /// `{public_url}/token/{id}`.
    pub fn manage_url(&self, manage_id: &str) -> String {
        format!("{}/token/{manage_id}", self.public_url)
    }

    /// `{public_url}/interact/{id}/{nonce}`: where the client sends the user.
    pub fn interaction_url(&self, id: &str, nonce: &str) -> String {
        format!("{}/interact/{id}/{nonce}", self.public_url)
    }

    /// `{public_url}/`: the grant endpoint, an input of the interaction hash.
    pub fn grant_endpoint(&self) -> String {
        format!("{}/", self.public_url)
    }

    /// `{public_url}/continue/{id}`.
    pub fn continue_url(&self, continue_id: &str) -> String {
        format!("{}/continue/{continue_id}", self.public_url)
    }
}

/// The public listener's routes.
pub fn public_router(state: AppState) -> Router {
    let mut router = gnap::routes()
        .merge(interaction::routes())
        .merge(oauth::routes());
    if state.sandbox.is_some() {
        router = router.merge(sandbox::routes());
    }
    finish(router, state)
}

/// The private listener's routes.
pub fn private_router(state: AppState) -> Router {
    finish(
        private::routes()
            .merge(idp::routes())
            .merge(admin::routes()),
        state,
    )
}

fn finish(router: Router<AppState>, state: AppState) -> Router {
    router
        .fallback(request::no_route)
        .method_not_allowed_fallback(request::method_not_allowed)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Logs method, route, status and latency; never headers or bodies (they carry tokens), and
/// the route template rather than the path, so ids and interaction nonces stay out of logs.
async fn log_request(request: Request, next: Next) -> Response {
    // Nothing to log at this level: no route string to build, no clock to read.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(no route)".to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        route,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}
