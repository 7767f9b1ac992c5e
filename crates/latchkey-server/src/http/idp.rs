//! Identity-provider API (private listener), as `id-provider.yaml` specifies: an identity
//! provider shows the grant to the resource owner and records the choice.
//! Authenticated by the `x-idp-secret` header; off when no secret is configured.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::GnapError;
use super::AppState;
use crate::domain::interaction::InteractionState;
use crate::token_format::{looks_like_id, TokenHash};

/// IdP routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/grant/{id}/{nonce}", get(lookup))
        .route("/grant/{id}/{nonce}/{choice}", post(choose))
}

fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(), GnapError> {
    let Some(secret) = &state.settings.idp_secret else {
        return Err(GnapError::NoRoute(
            "/grant (the identity-provider API is off: set --idp-secret)".into(),
        ));
    };
    let presented = headers
        .get("x-idp-secret")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if TokenHash::secrets_match(presented, secret) {
        Ok(())
    } else {
        Err(GnapError::IdpUnauthorized(
            "missing or wrong x-idp-secret header".into(),
        ))
    }
}

/// `GET /grant/{id}/{nonce}`: the grant the interaction is about.
async fn lookup(
    State(state): State<AppState>,
    Path((id, nonce)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, GnapError> {
    authenticate(&state, &headers)?;
    if !looks_like_id(&id) {
        return Err(crate::domain::DomainError::UnknownInteraction.into());
    }
    let (interaction, grant) = state.lifecycle.interaction(&id, &nonce).await?;
    if interaction.is_expired(crate::domain::clock::now_ms())
        && grant.state == crate::domain::grant::GrantState::Pending
    {
        return Err(crate::domain::DomainError::InvalidInteraction(
            "the interaction has expired".into(),
        )
        .into());
    }
    Ok(Json(json!({
        "grantId": grant.id,
        "access": grant.access,
        "state": InteractionState::of(grant.state).as_str(),
    })))
}

/// `POST /grant/{id}/{nonce}/accept|reject`: the resource owner's choice; 202.
async fn choose(
    State(state): State<AppState>,
    Path((id, nonce, choice)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, GnapError> {
    authenticate(&state, &headers)?;
    let approve = match choice.as_str() {
        "accept" => true,
        "reject" => false,
        other => {
            return Err(GnapError::InvalidRequest(format!(
                "choice `{other}` is not `accept` or `reject`"
            )))
        }
    };
    if !looks_like_id(&id) {
        return Err(crate::domain::DomainError::UnknownInteraction.into());
    }
    let (interaction, grant) = state.lifecycle.interaction(&id, &nonce).await?;
    state
        .lifecycle
        .decide(&interaction, &grant, approve)
        .await?;
    tracing::info!(grant = %grant.id, approve, "identity provider decided");
    Ok(StatusCode::ACCEPTED)
}
