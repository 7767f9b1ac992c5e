//! Sandbox wallet addresses: `GET /wallet/{name}` and `GET /wallet/{name}/jwks.json`, shaped as
//! `wallet-address-server.yaml` specifies.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use latchkey_proto::keys::JwkSet;
use latchkey_proto::wallet::WalletAddress;

use super::error::GnapError;
use super::AppState;

/// Sandbox routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/wallet/{name}", get(wallet_address))
        .route("/wallet/{name}/jwks.json", get(jwks))
}

fn unknown(name: &str) -> GnapError {
    GnapError::NoRoute(format!("/wallet/{name} (no such sandbox wallet address)"))
}

async fn wallet_address(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<WalletAddress>, GnapError> {
    state
        .sandbox
        .as_ref()
        .and_then(|s| s.document(&name))
        .map(Json)
        .ok_or_else(|| unknown(&name))
}

async fn jwks(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<JwkSet>, GnapError> {
    state
        .sandbox
        .as_ref()
        .and_then(|s| s.jwks(&name))
        .map(Json)
        .ok_or_else(|| unknown(&name))
}
