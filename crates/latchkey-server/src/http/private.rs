//! The private listener: GNAP token introspection for resource servers and health.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use latchkey_proto::gnap::IntrospectRequest;

use super::error::GnapError;
use super::request::RawRequest;
use super::AppState;
use crate::domain::introspection::IntrospectAnswer;

/// Private routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", post(introspect))
        .route("/healthz", get(healthz))
}

/// `POST /`: token introspection as `token-introspection.yaml` specifies.
async fn introspect(
    State(state): State<AppState>,
    req: RawRequest,
) -> Result<Json<IntrospectAnswer>, GnapError> {
    let body: IntrospectRequest = req.json()?;
    if body.access_token.is_empty() {
        return Err(GnapError::InvalidRequest("access_token is empty".into()));
    }
    let answer = state
        .lifecycle
        .introspect(&body.access_token, body.access.as_deref())
        .await?;
    Ok(Json(answer))
}

/// `GET /healthz`: 200 once the server is ready and its store answers.
async fn healthz(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<serde_json::Value>), GnapError> {
    state.lifecycle.store().ping().await?;
    Ok((StatusCode::OK, Json(serde_json::json!({"status": "ok"}))))
}
