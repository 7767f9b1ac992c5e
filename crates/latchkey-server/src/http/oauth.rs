//! OAuth 2.0 endpoints of the public listener (Kopo Kopo style), at the root so that one base
//! URL serves every call the Kopo Kopo SDKs make:
//!
//! * `POST /oauth/token`: `client_credentials` (RFC 6749 §4.4);
//! * `POST /oauth/revoke`: revocation (RFC 7009);
//! * `POST /oauth/introspect`: introspection (RFC 7662), for the client the token was issued to;
//! * `GET /oauth/token/info`: Doorkeeper's token info for a bearer token.
//!
//! Bodies may be `application/x-www-form-urlencoded` (with or without a charset) or JSON.
//! Clients authenticate by HTTP Basic or with `client_id`/`client_secret` in the body; any
//! other `Authorization` scheme (Kopo Kopo's Node SDK sends `Bearer null`) is not a client
//! authentication method and is ignored. This module parses and renders; the rules live in
//! [`crate::oauth`].

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use latchkey_proto::oauth::OAuthErrorCode;
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::error::OAuthError;
use super::AppState;
use crate::oauth::{Credentials, OAuthClient};

/// The OAuth routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(token).fallback(method_not_allowed))
        .route("/oauth/revoke", post(revoke).fallback(method_not_allowed))
        .route(
            "/oauth/introspect",
            post(introspect).fallback(method_not_allowed),
        )
        .route(
            "/oauth/token/info",
            get(token_info).fallback(method_not_allowed),
        )
        .route("/oauth/{*rest}", any(no_route))
}

async fn method_not_allowed(method: Method, uri: Uri) -> OAuthError {
    let allowed = if uri.path() == "/oauth/token/info" {
        "GET"
    } else {
        "POST"
    };
    OAuthError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        OAuthErrorCode::InvalidRequest,
        format!(
            "method {method} is not allowed on {}; use {allowed}",
            uri.path()
        ),
    )
}

async fn no_route(uri: Uri) -> OAuthError {
    OAuthError::new(
        StatusCode::NOT_FOUND,
        OAuthErrorCode::InvalidRequest,
        format!(
            "no OAuth endpoint at {} (there are /oauth/token, /oauth/revoke, /oauth/introspect \
             and /oauth/token/info)",
            uri.path()
        ),
    )
}

/// RFC 6749 §5.1: "The authorization server MUST include the HTTP "Cache-Control" response
/// header field [RFC2616] with a value of "no-store" in any response containing tokens,
/// credentials, or other sensitive information, as well as the "Pragma" response header
/// field [RFC2616] with a value of "no-cache"."
pub(crate) fn no_store<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Reads a whole body under `limit` bytes; over it, 413 in the OAuth shape.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, OAuthError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(OAuthError::payload_too_large(limit));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| OAuthError::payload_too_large(limit))
}

/// The peer address, when the listener records it.
pub(crate) fn source_of(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// One parameter value: JSON bodies may carry non-strings, refused when read.
#[derive(Debug)]
enum Param {
    Text(String),
    NotText,
}

/// HTTP Basic credentials, if sent.
#[derive(Debug)]
enum Basic {
    Absent,
    Present { id: String, secret: String },
    Malformed(&'static str),
}

/// An OAuth request read whole: parameters (form or JSON), HTTP Basic credentials, source.
#[derive(Debug)]
pub struct OAuthRequest {
    params: HashMap<String, Param>,
    basic: Basic,
    source: Option<IpAddr>,
}

impl FromRequest<AppState> for OAuthRequest {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let source = source_of(&req);
        let (parts, body) = req.into_parts();
        let body = read_body(&parts.headers, body, state.settings.max_body_bytes).await?;
        let params = parse_params(&parts.headers, &body)?;
        Ok(OAuthRequest {
            params,
            basic: parse_basic(&parts.headers),
            source,
        })
    }
}

enum BodyKind {
    Form,
    Json,
}

fn body_kind(headers: &HeaderMap, body: &[u8]) -> Result<BodyKind, OAuthError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        // No declared type: JSON if it looks like an object, else form.
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        return Ok(if first == Some(&b'{') {
            BodyKind::Json
        } else {
            BodyKind::Form
        });
    };
    let text = value.to_str().unwrap_or_default();
    let media = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media == "application/x-www-form-urlencoded" {
        Ok(BodyKind::Form)
    } else if media == "application/json"
        || (media.starts_with("application/") && media.ends_with("+json"))
    {
        Ok(BodyKind::Json)
    } else {
        Err(OAuthError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            OAuthErrorCode::InvalidRequest,
            format!(
                "content type `{}` is not supported; send application/x-www-form-urlencoded \
                 (RFC 6749 §4.4.2) or application/json",
                text.chars().take(100).collect::<String>()
            ),
        ))
    }
}

fn parse_params(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, Param>, OAuthError> {
    let mut params = HashMap::new();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(params);
    }
    match body_kind(headers, body)? {
        BodyKind::Form => {
            if std::str::from_utf8(body).is_err() {
                return Err(OAuthError::invalid_request(
                    "the form body is not UTF-8 (RFC 6749 Appendix B)",
                ));
            }
            for (name, value) in url::form_urlencoded::parse(body) {
                // RFC 6749 §3.2: "Request and response parameters MUST NOT be included more
                // than once."
                if params.contains_key(name.as_ref()) {
                    return Err(OAuthError::invalid_request(format!(
                        "parameter `{}` is repeated (RFC 6749 §3.2)",
                        name.chars().take(50).collect::<String>()
                    )));
                }
                params.insert(name.into_owned(), Param::Text(value.into_owned()));
            }
        }
        BodyKind::Json => {
            let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
                OAuthError::invalid_request(format!("the body is not valid JSON: {e}"))
            })?;
            let serde_json::Value::Object(map) = value else {
                return Err(OAuthError::invalid_request(
                    "the JSON body must be an object",
                ));
            };
            for (name, value) in map {
                let param = match value {
                    serde_json::Value::String(s) => Param::Text(s),
                    serde_json::Value::Null => continue,
                    _ => Param::NotText,
                };
                params.insert(name, param);
            }
        }
    }
    Ok(params)
}

/// RFC 6749 §2.3.1: "the client identifier is encoded using the
/// "application/x-www-form-urlencoded" encoding algorithm per Appendix B, and the encoded
/// value is used as the username; the client password is encoded using the same algorithm
/// and used as the password." Some clients (Authlib) send the raw values; Latchkey's ids and
/// secrets use only unreserved characters, for which both forms are identical.
fn form_decode(text: &str) -> String {
    let plus_as_space = text.replace('+', " ");
    match urlencoding::decode(&plus_as_space) {
        Ok(decoded) => decoded.into_owned(),
        Err(_) => text.to_string(),
    }
}

fn parse_basic(headers: &HeaderMap) -> Basic {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Basic::Absent;
    };
    let Ok(text) = value.to_str() else {
        return Basic::Absent;
    };
    let text = text.trim();
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        // Not a client authentication method (e.g. Kopo Kopo's `Bearer null`): ignored.
        return Basic::Absent;
    }
    let encoded = rest.trim();
    let Ok(bytes) = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
    else {
        return Basic::Malformed("the HTTP Basic credentials are not valid base64");
    };
    let Ok(pair) = String::from_utf8(bytes) else {
        return Basic::Malformed("the HTTP Basic credentials are not UTF-8");
    };
    // RFC 7617 §2: the user-id cannot contain a colon; split at the first one.
    let Some((id, secret)) = pair.split_once(':') else {
        return Basic::Malformed("the HTTP Basic credentials have no `:` between id and secret");
    };
    Basic::Present {
        id: form_decode(id),
        secret: form_decode(secret),
    }
}

impl OAuthRequest {
    /// A parameter's value; empty values count as absent (RFC 6749 §3.1: "Parameters sent
    /// without a value MUST be treated as if they were omitted from the request.").
    pub fn param(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        match self.params.get(name) {
            None => Ok(None),
            Some(Param::Text(s)) if s.is_empty() => Ok(None),
            Some(Param::Text(s)) => Ok(Some(s.as_str())),
            Some(Param::NotText) => Err(OAuthError::invalid_request(format!(
                "`{name}` must be a string"
            ))),
        }
    }

    /// A required parameter.
    fn required(&self, name: &str, why: &str) -> Result<&str, OAuthError> {
        self.param(name)?
            .ok_or_else(|| OAuthError::invalid_request(format!("`{name}` is missing ({why})")))
    }

    /// Authenticates the client (RFC 6749 §2.3.1) through the OAuth service.
    async fn authenticate(&self, state: &AppState) -> Result<OAuthClient, OAuthError> {
        let credentials = self.credentials(state)?;
        Ok(state.oauth.authenticate(credentials, self.source).await?)
    }

    /// The client credentials as presented, by HTTP Basic or in the body (RFC 6749 §2.3.1);
    /// nothing is checked against the store yet.
    fn credentials(&self, state: &AppState) -> Result<Credentials<'_>, OAuthError> {
        let body_id = self.param("client_id")?;
        let body_secret = self.param("client_secret")?;
        let credentials = match &self.basic {
            Basic::Present { id, secret } => {
                // RFC 6749 §2.3.1: "The client MUST NOT use more than one authentication
                // method in each request."
                if body_secret.is_some() {
                    return Err(OAuthError::invalid_request(
                        "the client used more than one authentication method (HTTP Basic and \
                         client_secret in the body); RFC 6749 §2.3.1 allows one",
                    ));
                }
                if body_id.is_some_and(|b| b != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id in the body differs from the HTTP Basic user name",
                    ));
                }
                Credentials {
                    client_id: Some(id.as_str()).filter(|s| !s.is_empty()),
                    client_secret: Some(secret.as_str()).filter(|s| !s.is_empty()),
                }
            }
            Basic::Malformed(why) if body_secret.is_none() => {
                return Err(state.oauth.refuse(self.source, why).into());
            }
            Basic::Absent | Basic::Malformed(_) => Credentials {
                client_id: body_id,
                client_secret: body_secret,
            },
        };
        Ok(credentials)
    }
}

/// `POST /oauth/token`.
///
/// RFC 6749 §4.4.2: "grant_type REQUIRED. Value MUST be set to "client_credentials".
/// scope OPTIONAL." and "The client MUST authenticate with the authorization server as
/// described in Section 3.2.1."
async fn token(State(state): State<AppState>, req: OAuthRequest) -> Result<Response, OAuthError> {
    let grant_type = req.required(
        "grant_type",
        "RFC 6749 §4.4.2: it must be client_credentials",
    )?;
    if grant_type != "client_credentials" {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            OAuthErrorCode::UnsupportedGrantType,
            format!(
                "grant type `{}` is not supported; use client_credentials",
                grant_type.chars().take(50).collect::<String>()
            ),
        ));
    }
    let scope = req.param("scope")?;
    let client = req.authenticate(&state).await?;
    let issued = state.oauth.issue(&client, scope).await?;
    Ok(no_store(StatusCode::OK, &issued.response()))
}

/// `POST /oauth/revoke` (RFC 7009 §2.1): "token REQUIRED. The token that the client wants
/// to get revoked. token_type_hint OPTIONAL." The hint is accepted and not needed: there is
/// one kind of token. §2.2: "The content of the response body is ignored by the client as
/// all necessary information is conveyed in the response code." The body is `{}`, which
/// Kopo Kopo's Python SDK parses as JSON.
async fn revoke(State(state): State<AppState>, req: OAuthRequest) -> Result<Response, OAuthError> {
    // RFC 7009 §2.1: "The authorization server first validates the client credentials".
    let client = req.authenticate(&state).await?;
    let token = req.required("token", "RFC 7009 §2.1: the token to revoke")?;
    req.param("token_type_hint")?;
    state.oauth.revoke(&client, token).await?;
    Ok(no_store(StatusCode::OK, &serde_json::json!({})))
}

/// `POST /oauth/introspect` (RFC 7662 §2.1: "token REQUIRED. The string value of the token.";
/// the caller is authenticated with its client credentials).
async fn introspect(
    State(state): State<AppState>,
    req: OAuthRequest,
) -> Result<Response, OAuthError> {
    const WHY: &str = "RFC 7662 §2.1: the token to introspect";
    let credentials = req.credentials(&state)?;
    let token = match req.required("token", WHY) {
        Ok(token) => token,
        Err(unusable) => {
            // The client's authentication is judged first, as on the other endpoints.
            state.oauth.authenticate(credentials, req.source).await?;
            return Err(unusable);
        }
    };
    let answer = state
        .oauth
        .authenticate_and_introspect(credentials, req.source, token)
        .await?;
    req.param("token_type_hint")?;
    Ok(no_store(StatusCode::OK, &answer))
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let text = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `GET /oauth/token/info`: `{resource_owner_id, scope: [..], expires_in, application:
/// {uid}, created_at}` for an active token; 401 `invalid_token` otherwise. The request's
/// `Content-Type` and body are ignored (the Kopo Kopo SDKs send `application/json` on a GET).
async fn token_info(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let Some(token) = bearer_token(&headers) else {
        return Err(OAuthError::invalid_token(
            "no access token: send `Authorization: Bearer <access token>` (RFC 6750 §2.1)",
        ));
    };
    let info = state.oauth.token_info(token).await?;
    Ok(no_store(StatusCode::OK, &info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    fn text<'a>(p: &'a HashMap<String, Param>, k: &str) -> Option<&'a str> {
        match p.get(k) {
            Some(Param::Text(s)) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn form_json_and_sniffed_bodies() {
        let form = headers(&[(
            "content-type",
            "application/x-www-form-urlencoded;charset=UTF-8",
        )]);
        let p = parse_params(&form, b"grant_type=client_credentials&scope=a+b&x=").expect("form");
        assert_eq!(text(&p, "scope"), Some("a b"));
        assert_eq!(text(&p, "x"), Some(""));
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        let p = parse_params(&json, br#"{"token":"t","n":1,"z":null}"#).expect("json");
        assert_eq!(text(&p, "token"), Some("t"));
        assert!(matches!(p.get("n"), Some(Param::NotText)));
        assert!(!p.contains_key("z"));
        let p = parse_params(&HeaderMap::new(), br#" {"token":"t"}"#).expect("sniffed");
        assert_eq!(text(&p, "token"), Some("t"));
        let p = parse_params(&HeaderMap::new(), b"token=t").expect("sniffed");
        assert_eq!(text(&p, "token"), Some("t"));
        assert!(parse_params(&json, b"").expect("empty").is_empty());
    }

    #[test]
    fn bad_bodies_are_invalid_request() {
        let form = headers(&[("content-type", "application/x-www-form-urlencoded")]);
        assert!(parse_params(&form, b"a=1&a=2").is_err());
        assert!(parse_params(&form, b"a=\xff").is_err());
        let json = headers(&[("content-type", "application/json")]);
        assert!(parse_params(&json, b"{nope").is_err());
        assert!(parse_params(&json, b"[1]").is_err());
        let xml = headers(&[("content-type", "text/xml")]);
        let err = parse_params(&xml, b"<a/>").expect_err("415");
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn basic_credentials_are_url_decoded_and_other_schemes_ignored() {
        let b64 = |s: &str| format!("Basic {}", STANDARD.encode(s));
        match parse_basic(&headers(&[("authorization", &b64("my%2Bid:s%3Acr+t"))])) {
            Basic::Present { id, secret } => {
                assert_eq!(id, "my+id");
                assert_eq!(secret, "s:cr t");
            }
            other => panic!("{other:?}"),
        }
        match parse_basic(&headers(&[("authorization", &b64("id:a:b"))])) {
            Basic::Present { id, secret } => {
                assert_eq!((id.as_str(), secret.as_str()), ("id", "a:b"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_basic(&headers(&[("authorization", "Bearer null")])),
            Basic::Absent
        ));
        assert!(matches!(
            parse_basic(&headers(&[("authorization", "basic !!!")])),
            Basic::Malformed(_)
        ));
        assert!(matches!(
            parse_basic(&headers(&[("authorization", &b64("nocolon"))])),
            Basic::Malformed(_)
        ));
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer ")])),
            None
        );
    }
}
