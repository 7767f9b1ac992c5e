//! The admin API of the private listener: OAuth client management, authenticated by the admin
//! token (`Authorization: Bearer <admin token>`). Without a configured token the API is off and
//! every `/admin/...` path answers 404 saying so.
//!
//! | method + path | does |
//! |---|---|
//! | `GET /admin/oauth-clients` | list clients (never secrets) |
//! | `POST /admin/oauth-clients` `{name, scopes?}` | create; 201 `{client_id, client_secret}` (shown once) |
//! | `GET /admin/oauth-clients/{id}` | one client |
//! | `DELETE /admin/oauth-clients/{id}` | delete it and its tokens; 204 |
//! | `POST /admin/oauth-clients/{id}/disable` | disable and revoke all its tokens (one transaction) |
//! | `POST /admin/oauth-clients/{id}/enable` | enable again (revoked tokens stay revoked) |
//! | `POST /admin/oauth-clients/{id}/rotate-secret` `{revoke_tokens?}` | new secret, shown once |
//!
//! Errors use the RFC 6749 §5.2 shape, like the OAuth endpoints.

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use latchkey_proto::oauth::{CreateClientRequest, OAuthErrorCode, RotateSecretRequest};
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};

use super::error::{Challenge, OAuthError};
use super::oauth::{bearer_token, no_store, read_body};
use super::AppState;

/// The admin routes (merged into the private router).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/oauth-clients",
            get(list).post(create).fallback(method_not_allowed),
        )
        .route(
            "/admin/oauth-clients/{id}",
            get(get_one).delete(delete).fallback(method_not_allowed),
        )
        .route(
            "/admin/oauth-clients/{id}/disable",
            post(disable).fallback(method_not_allowed),
        )
        .route(
            "/admin/oauth-clients/{id}/enable",
            post(enable).fallback(method_not_allowed),
        )
        .route(
            "/admin/oauth-clients/{id}/rotate-secret",
            post(rotate_secret).fallback(method_not_allowed),
        )
        .route("/admin", any(no_route))
        .route("/admin/{*rest}", any(no_route))
}

fn admin_off() -> OAuthError {
    OAuthError::new(
        StatusCode::NOT_FOUND,
        OAuthErrorCode::InvalidRequest,
        "the admin API is off: no admin token is configured (start latchkey with --admin-token, \
         LATCHKEY_ADMIN_TOKEN or admin_token in the config file)",
    )
}

/// Proof that the request carried the admin token. Checked before anything else, so that
/// without the token nothing about the API (not even its routes) is revealed.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = OAuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OAuthError> {
        let Some(expected) = state.admin_token else {
            return Err(admin_off());
        };
        let source: Option<IpAddr> = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let limiter = state.oauth.limiter();
        if let Err(limited) = limiter.check(None, source) {
            return Err(OAuthError {
                retry_after: Some(limited.retry_after_secs),
                ..OAuthError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    OAuthErrorCode::SlowDown,
                    format!(
                        "too many failed admin authentications; retry in {} s",
                        limited.retry_after_secs
                    ),
                )
            });
        }
        let presented = bearer_token(&parts.headers);
        if presented.is_some_and(|t| expected.matches_secret(t)) {
            return Ok(Admin);
        }
        limiter.record_failure(None, source);
        tracing::info!(source = %crate::oauth::shown(source), "admin API: authentication failed");
        let description = if presented.is_some() {
            "the admin token is wrong"
        } else {
            "the admin API needs `Authorization: Bearer <admin token>`"
        };
        Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            OAuthErrorCode::InvalidToken,
            description,
        )
        .with_challenge(Challenge::Bearer))
    }
}

async fn no_route(State(state): State<AppState>, uri: Uri) -> OAuthError {
    if state.admin_token.is_none() {
        return admin_off();
    }
    OAuthError::new(
        StatusCode::NOT_FOUND,
        OAuthErrorCode::InvalidRequest,
        format!("no admin endpoint at {}", uri.path()),
    )
}

async fn method_not_allowed(State(state): State<AppState>, method: Method, uri: Uri) -> OAuthError {
    if state.admin_token.is_none() {
        return admin_off();
    }
    OAuthError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        OAuthErrorCode::InvalidRequest,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

/// Parses an optional JSON body (empty means `T::default()`).
async fn json_body<T: DeserializeOwned + Default>(
    state: &AppState,
    request: Request,
) -> Result<T, OAuthError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(&parts.headers, body, state.settings.max_body_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| OAuthError::invalid_request(format!("malformed JSON body: {e}")))
}

async fn list(_: Admin, State(state): State<AppState>) -> Result<Response, OAuthError> {
    let clients = state.oauth.admin().list().await?;
    Ok(no_store(StatusCode::OK, &clients))
}

async fn create(
    _: Admin,
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, OAuthError> {
    let body: CreateClientRequest = json_body(&state, request).await?;
    let credentials = state.oauth.admin().create(&body.name, &body.scopes).await?;
    Ok(no_store(StatusCode::CREATED, &credentials))
}

async fn get_one(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    let client = state.oauth.admin().get(&id).await?;
    Ok(no_store(StatusCode::OK, &client))
}

async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    state.oauth.admin().delete(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn disable(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    let outcome = state.oauth.admin().disable(&id).await?;
    Ok(no_store(StatusCode::OK, &outcome))
}

async fn enable(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, OAuthError> {
    let client = state.oauth.admin().enable(&id).await?;
    Ok(no_store(StatusCode::OK, &client))
}

async fn rotate_secret(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, OAuthError> {
    let body: RotateSecretRequest = json_body(&state, request).await?;
    let credentials = state
        .oauth
        .admin()
        .rotate_secret(&id, body.revoke_tokens)
        .await?;
    Ok(no_store(StatusCode::OK, &credentials))
}
