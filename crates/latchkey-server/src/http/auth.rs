//! Client authentication: HTTP Message Signatures (RFC 9421) with the client's Ed25519 key, and
//! token binding (`Authorization: GNAP <token>` must be the very token the URL names).

use axum::http::header;
use latchkey_proto::digest::verify_content_digest;
use latchkey_proto::httpsig::{parse_signature, RequestParts};

use super::error::GnapError;
use super::request::RawRequest;
use super::AppState;
use crate::domain::clock::now_ms;
use crate::domain::grant::ClientKeySource;
use crate::token_format::TokenHash;

/// The token presented as `Authorization: GNAP <value>`.
///
/// RFC 9635 §7.2: "the client instance MUST present the access token using the GNAP
/// authorization scheme".
pub fn presented_token_value(req: &RawRequest) -> Result<String, GnapError> {
    let value = req
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            GnapError::InvalidClient("missing `Authorization: GNAP <access token>` header".into())
        })?
        .to_str()
        .map_err(|_| GnapError::InvalidClient("the Authorization header is not text".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("GNAP") || token.is_empty() {
        return Err(GnapError::InvalidClient(
            "the Authorization header must be `GNAP <access token>`".into(),
        ));
    }
    Ok(token.to_string())
}

/// Checks that the presented token is `expected` (constant time) and returns the presented
/// value (the continuation response echoes it back).
pub fn require_bound_token(
    req: &RawRequest,
    expected: &TokenHash,
    what: &str,
) -> Result<String, GnapError> {
    let presented = presented_token_value(req)?;
    if TokenHash::of(&presented).ct_eq(expected) {
        Ok(presented)
    } else {
        Err(GnapError::InvalidClient(format!(
            "the presented access token is not the {what} this URL names"
        )))
    }
}

fn header_text(req: &RawRequest, name: &str) -> Result<Option<String>, GnapError> {
    match req.headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| GnapError::InvalidClient(format!("the {name} header is not text"))),
    }
}

/// The URIs the client may have signed as `@target-uri`: the public URL plus the path, and in
/// development mode also `http://{Host}` plus the path (clients often say `localhost`).
fn target_uris(state: &AppState, req: &RawRequest) -> Vec<String> {
    let mut uris = vec![format!(
        "{}{}",
        state.settings.public_url, req.path_and_query
    )];
    if state.settings.dev {
        if let Some(host) = req.headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
            let alt = format!("http://{host}{}", req.path_and_query);
            if !uris.contains(&alt) {
                uris.push(alt);
            }
        }
    }
    uris
}

/// Verifies the request's signature with the client's key, the covered components DESIGN.md
/// requires, the `created` window, and the Content-Digest of the raw body.
pub async fn verify_signature(
    state: &AppState,
    req: &RawRequest,
    client: &ClientKeySource,
) -> Result<(), GnapError> {
    let input = header_text(req, "signature-input")?;
    let signature = header_text(req, "signature")?;
    let (Some(input), Some(signature)) = (input, signature) else {
        return Err(GnapError::InvalidClient(
            "the request is not signed: Signature-Input and Signature headers are required \
             (RFC 9421)"
                .into(),
        ));
    };
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                name.as_str().to_ascii_lowercase(),
                value.to_str().ok()?.to_string(),
            ))
        })
        .collect();
    let has_body = !req.body.is_empty();
    let has_authorization = req.headers.contains_key(header::AUTHORIZATION);
    let method = req.method.as_str();
    let mut last_error = None;
    for target_uri in target_uris(state, req) {
        let parts = RequestParts {
            method,
            target_uri: &target_uri,
            headers: &headers,
        };
        let parsed = parse_signature(&parts, &input, &signature)
            .map_err(|e| GnapError::InvalidClient(format!("invalid signature: {e}")))?;
        parsed
            .check_required_components(has_body, has_authorization)
            .map_err(|e| GnapError::InvalidClient(format!("invalid signature: {e}")))?;
        parsed
            .check_created(
                now_ms() / 1000,
                state.settings.signature_window.as_secs() as i64,
            )
            .map_err(|e| GnapError::InvalidClient(format!("invalid signature: {e}")))?;
        let key = state.keys.key_for(client, parsed.keyid()).await?;
        match parsed.verify(&key) {
            Ok(()) => {
                if has_body {
                    let digest = header_text(req, "content-digest")?.ok_or_else(|| {
                        GnapError::InvalidClient("missing Content-Digest header".into())
                    })?;
                    verify_content_digest(&digest, &req.body).map_err(|e| {
                        GnapError::InvalidClient(format!("Content-Digest does not verify: {e}"))
                    })?;
                }
                return Ok(());
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(GnapError::InvalidClient(format!(
        "invalid signature: {}",
        last_error.map(|e| e.to_string()).unwrap_or_default()
    )))
}
