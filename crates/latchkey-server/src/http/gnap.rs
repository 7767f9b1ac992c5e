//! GNAP endpoints of the public listener: grant request (`POST /`), continuation
//! (`POST`/`DELETE /continue/{id}`), token management (`POST`/`DELETE /token/{id}`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use latchkey_proto::gnap::{
    AccessToken, ClientRef, Continue, ContinueRequest, ContinueToken, GrantRequest, GrantResponse,
    InteractResponse, RotateResponse,
};

use super::auth::{require_bound_token, verify_signature};
use super::error::GnapError;
use super::request::RawRequest;
use super::AppState;
use crate::domain::clock::now_ms;
use crate::domain::grant::ClientKeySource;
use crate::domain::lifecycle::ContinueOutcome;
use crate::domain::token::AccessTokenRecord;
use crate::domain::DomainError;
use crate::token_format::{looks_like_id, TokenValue};

/// The GNAP routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", post(grant_request))
        .route("/continue/{id}", post(continue_grant).delete(cancel_grant))
        .route("/token/{id}", post(rotate_token).delete(revoke_token))
}

fn client_source(client: ClientRef) -> Result<ClientKeySource, GnapError> {
    match client {
        ClientRef::Url(url)
        | ClientRef::WalletAddress {
            wallet_address: url,
        } => {
            let parsed = url::Url::parse(&url).map_err(|e| {
                GnapError::InvalidRequest(format!(
                    "client `{url}` is not a wallet address URL: {e}"
                ))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(GnapError::InvalidRequest(format!(
                    "client `{url}` is not an https wallet address URL"
                )));
            }
            Ok(ClientKeySource::WalletAddress(url))
        }
        ClientRef::Jwk { jwk } => {
            jwk.to_verifying_key().map_err(|e| {
                GnapError::InvalidRequest(format!("client jwk is not an Ed25519 key: {e}"))
            })?;
            Ok(ClientKeySource::Jwk(jwk))
        }
    }
}

fn access_token_body(
    state: &AppState,
    record: &AccessTokenRecord,
    value: &TokenValue,
    access: Vec<latchkey_proto::gnap::AccessItem>,
) -> AccessToken {
    AccessToken {
        value: value.expose().to_string(),
        manage: state.settings.manage_url(&record.manage_id),
        expires_in: Some(record.expires_in_secs(now_ms())),
        access,
    }
}

/// `POST /`: RFC 9635 §2 grant request, signed by the client.
async fn grant_request(
    State(state): State<AppState>,
    req: RawRequest,
) -> Result<Json<GrantResponse>, GnapError> {
    let body: serde_json::Value = req.json()?;
    let client = body
        .get("client")
        .cloned()
        .ok_or_else(|| GnapError::InvalidRequest("the grant request has no `client`".into()))?;
    let client: ClientRef = serde_json::from_value(client).map_err(|_| {
        GnapError::InvalidRequest(
            "`client` must be a wallet address URL, {\"walletAddress\": url} or {\"jwk\": {...}}"
                .into(),
        )
    })?;
    let source = client_source(client)?;
    // Authenticate before reading the rest: an unsigned caller learns nothing about the rules.
    verify_signature(&state, &req, &source).await?;
    let request: GrantRequest = serde_json::from_value(body)
        .map_err(|e| GnapError::InvalidRequest(format!("invalid grant request: {e}")))?;
    let Some(access_token) = request.access_token else {
        return Err(GnapError::InvalidRequest(
            "`access_token` is required (subject-only requests are not supported)".into(),
        ));
    };
    let issued = state
        .lifecycle
        .request_grant(source, access_token.access, request.interact)
        .await?;
    let access_token = issued.access_token.as_ref().map(|(record, value)| {
        access_token_body(&state, record, value, issued.grant.access.clone())
    });
    let interact = issued.interaction.as_ref().map(|i| InteractResponse {
        redirect: state.settings.interaction_url(&i.id, &i.nonce),
        finish: i.nonce.clone(),
    });
    tracing::info!(grant = %issued.grant.id, interactive = interact.is_some(), "grant requested");
    Ok(Json(GrantResponse {
        access_token,
        continue_: Continue {
            access_token: ContinueToken {
                value: issued.continue_token.expose().to_string(),
            },
            uri: state.settings.continue_url(&issued.grant.continue_id),
            wait: interact.as_ref().map(|_| issued.grant.wait_secs),
        },
        interact,
    }))
}

/// The grant a continue URL names, once its continuation token and the client's signature
/// check out; with the presented continuation token, which the client keeps using.
async fn load_continued_grant(
    state: &AppState,
    id: &str,
    req: &RawRequest,
) -> Result<(crate::domain::grant::Grant, String), GnapError> {
    if !looks_like_id(id) {
        return Err(DomainError::UnknownGrant.into());
    }
    let grant = state.lifecycle.grant_by_continue_id(id).await?;
    let continue_token =
        require_bound_token(req, &grant.continue_token_hash, "continuation token")?;
    verify_signature(state, req, &grant.client).await?;
    Ok((grant, continue_token))
}

/// `POST /continue/{id}`: RFC 9635 §5 continuation.
async fn continue_grant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: RawRequest,
) -> Result<Json<GrantResponse>, GnapError> {
    let (grant, continue_token) = load_continued_grant(&state, &id, &req).await?;
    let body: ContinueRequest = if req.body.is_empty() {
        ContinueRequest::default()
    } else {
        req.json()?
    };
    let outcome = state
        .lifecycle
        .continue_grant(&grant, body.interact_ref.as_deref())
        .await?;
    // The continuation token is unchanged; the client presented it, so echo it back.
    let (access_token, wait) = match outcome {
        ContinueOutcome::Pending { wait_secs } => (None, Some(wait_secs)),
        ContinueOutcome::Issued(record, value) => {
            tracing::info!(grant = %grant.id, "grant approved and issued");
            let token = access_token_body(&state, &record, &value, grant.access.clone());
            (Some(token), None)
        }
    };
    Ok(Json(GrantResponse {
        access_token,
        interact: None,
        continue_: Continue {
            access_token: ContinueToken {
                value: continue_token,
            },
            uri: state.settings.continue_url(&grant.continue_id),
            wait,
        },
    }))
}

/// `DELETE /continue/{id}`: RFC 9635 §5.4 "the client instance can cancel the grant request";
/// the grant is finalized as revoked and all its tokens die. Idempotent: 204 again.
async fn cancel_grant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: RawRequest,
) -> Result<StatusCode, GnapError> {
    let (grant, _) = load_continued_grant(&state, &id, &req).await?;
    state.lifecycle.cancel_grant(&grant).await?;
    tracing::info!(grant = %grant.id, "grant cancelled");
    Ok(StatusCode::NO_CONTENT)
}

async fn load_managed_token(
    state: &AppState,
    id: &str,
    req: &RawRequest,
) -> Result<(AccessTokenRecord, crate::domain::grant::Grant), GnapError> {
    if !looks_like_id(id) {
        return Err(DomainError::UnknownToken.into());
    }
    let (token, grant) = state.lifecycle.token_by_manage_id(id).await?;
    require_bound_token(req, &token.hash, "access token")?;
    verify_signature(state, req, &grant.client).await?;
    Ok((token, grant))
}

/// `POST /token/{id}`: RFC 9635 §6.1 rotation. "The AS MUST revoke the existing access token"
/// and issue a new one with the same rights and a fresh lifetime.
async fn rotate_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: RawRequest,
) -> Result<Json<RotateResponse>, GnapError> {
    let (token, grant) = load_managed_token(&state, &id, &req).await?;
    let (successor, value) = state.lifecycle.rotate_token(&token, &grant).await?;
    tracing::info!(grant = %grant.id, "token rotated");
    Ok(Json(RotateResponse {
        access_token: access_token_body(&state, &successor, &value, grant.access.clone()),
    }))
}

/// `DELETE /token/{id}`: RFC 9635 §6.2 revocation; idempotent (204 for a token already revoked
/// or expired).
///
/// auth-server.yaml lists 204, 401 and 500 for this operation, no 404: a URL that names no
/// token this server keeps (never issued, or purged long after it ended) cannot be checked
/// against any client key, so the caller is refused as unauthenticated, 401 `invalid_client`.
async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: RawRequest,
) -> Result<StatusCode, GnapError> {
    let (token, grant) = load_managed_token(&state, &id, &req)
        .await
        .map_err(|e| match e {
            GnapError::Domain(DomainError::UnknownToken) => GnapError::InvalidClient(
                "no access token is managed at this URL (unknown, or removed after it ended)"
                    .into(),
            ),
            other => other,
        })?;
    state.lifecycle.revoke_token(&token).await?;
    tracing::info!(grant = %grant.id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
