//! Interaction in the user's browser: start (`GET /interact/{id}/{nonce}`), the built-in consent
//! page (`GET`/`POST /consent/{id}`), and finish (`GET /interact/{id}/{nonce}/finish`).
//!
//! The start binds a session cookie (HttpOnly, SameSite=Lax, one per interaction) to the
//! interaction; the consent page and the finish only work in that browser. The consent form
//! carries a CSRF token derived from the session, and every page forbids framing.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use latchkey_proto::gnap::{AccessItem, Action, Amount};
use sha2::{Digest, Sha256};

use super::error::GnapError;
use super::request::RawRequest;
use super::AppState;
use crate::domain::grant::{ClientKeySource, Grant, GrantState};
use crate::domain::interaction::{interaction_hash, Interaction};
use crate::domain::lifecycle::{FinishOutcome, Lifecycle};
use crate::domain::DomainError;
use crate::token_format::looks_like_id;

/// Interaction routes (public listener).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/interact/{id}/{nonce}", get(start))
        .route("/interact/{id}/{nonce}/finish", get(finish))
        .route("/consent/{id}", get(consent_page).post(consent_decision))
}

/// `302 Found` with `Location` (id-provider.yaml answers 302 on interaction start and finish).
fn found(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn cookie_name(interaction_id: &str) -> String {
    format!("latchkey_interaction_{interaction_id}")
}

/// The value of cookie `name` in the request, if any.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn csrf_token(session: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(
        format!("latchkey-consent-csrf\n{session}").as_bytes(),
    ))
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Headers every interaction page carries: no framing (clickjacking), no caching, no referrer.
fn page_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

async fn client_display(state: &AppState, grant: &Grant) -> (String, String) {
    match &grant.client {
        ClientKeySource::WalletAddress(url) => {
            let name = match state.keys.wallet_address_document(url).await {
                Ok(doc) => doc.public_name.unwrap_or_else(|| url.clone()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fetch the client's wallet address document");
                    url.clone()
                }
            };
            (name, url.clone())
        }
        ClientKeySource::Jwk(jwk) => (format!("key {}", jwk.kid), String::new()),
    }
}

/// `GET /interact/{id}/{nonce}`: starts the interaction and sends the browser to the consent page
/// (the built-in one, or the identity provider's when one is configured).
async fn start(
    State(state): State<AppState>,
    Path((id, nonce)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, GnapError> {
    if !looks_like_id(&id) {
        return Err(DomainError::UnknownInteraction.into());
    }
    let presented = cookie(&headers, &cookie_name(&id));
    let (interaction, grant, session) = state
        .lifecycle
        .start_interaction(&id, &nonce, presented.as_deref())
        .await?;
    let location = match &state.settings.consent_url {
        Some(consent) => {
            let (client_name, client_uri) = client_display(&state, &grant).await;
            let mut url = url::Url::parse(consent)
                .map_err(|e| GnapError::InvalidRequest(format!("consent URL: {e}")))?;
            url.query_pairs_mut()
                .append_pair("interactId", &interaction.id)
                .append_pair("nonce", &interaction.nonce)
                .append_pair("clientName", &client_name)
                .append_pair("clientUri", &client_uri);
            url.to_string()
        }
        None => format!("{}/consent/{}", state.settings.public_url, interaction.id),
    };
    let max_age =
        u64::try_from((interaction.expires_at - interaction.created_at) / 1000).unwrap_or(600);
    let mut response = found(&location);
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(
            &state,
            &cookie_name(&interaction.id),
            session.expose(),
            max_age,
        ),
    );
    page_headers(&mut response);
    Ok(response)
}

async fn session_interaction(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
) -> Result<(Interaction, Grant, String), GnapError> {
    if !looks_like_id(id) {
        return Err(DomainError::UnknownInteraction.into());
    }
    let (interaction, grant) = state
        .lifecycle
        .store()
        .interaction_by_id(id)
        .await?
        .ok_or(DomainError::UnknownInteraction)?;
    let session = cookie(headers, &cookie_name(id));
    Lifecycle::require_session(&interaction, session.as_deref())?;
    Ok((interaction, grant, session.unwrap_or_default()))
}

/// `GET /consent/{id}`: the sandbox consent page.
async fn consent_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, GnapError> {
    let (interaction, grant, session) = session_interaction(&state, &id, &headers).await?;
    let (client_name, client_uri) = client_display(&state, &grant).await;
    let body = if grant.state == GrantState::Pending {
        render_consent(
            &interaction,
            &grant,
            &client_name,
            &client_uri,
            &csrf_token(&session),
        )
    } else {
        render_message(
            "This request was already answered.",
            "You can close this window.",
        )
    };
    let mut response = Html(body).into_response();
    page_headers(&mut response);
    Ok(response)
}

/// `POST /consent/{id}`: the resource owner's decision from the consent page.
async fn consent_decision(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: RawRequest,
) -> Result<Response, GnapError> {
    let (interaction, grant, session) = session_interaction(&state, &id, &req.headers).await?;
    let mut csrf = None;
    let mut decision = None;
    for (key, value) in url::form_urlencoded::parse(&req.body) {
        match key.as_ref() {
            "csrf" => csrf = Some(value.into_owned()),
            "decision" => decision = Some(value.into_owned()),
            _ => {}
        }
    }
    let expected = csrf_token(&session);
    let csrf_ok =
        csrf.is_some_and(|c| crate::token_format::TokenHash::secrets_match(&c, &expected));
    if !csrf_ok {
        return Err(GnapError::InvalidRequest(
            "the consent form is stale or was not sent by this page (CSRF check failed)".into(),
        ));
    }
    let approve = match decision.as_deref() {
        Some("accept") => true,
        Some("deny") => false,
        _ => {
            return Err(GnapError::InvalidRequest(
                "decision must be `accept` or `deny`".into(),
            ))
        }
    };
    state
        .lifecycle
        .decide(&interaction, &grant, approve)
        .await?;
    tracing::info!(grant = %grant.id, approve, "consent decided");
    let finish = format!(
        "{}/interact/{}/{}/finish",
        state.settings.public_url, interaction.id, interaction.nonce
    );
    let mut response = Redirect::to(&finish).into_response();
    page_headers(&mut response);
    Ok(response)
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> Result<String, GnapError> {
    let mut url =
        url::Url::parse(base).map_err(|e| GnapError::InvalidRequest(format!("finish URI: {e}")))?;
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    Ok(url.to_string())
}

/// `GET /interact/{id}/{nonce}/finish`: RFC 9635 §4.2.1 "the AS MUST redirect the RO's browser
/// to the client instance's URI ... with the interaction reference and hash".
async fn finish(
    State(state): State<AppState>,
    Path((id, nonce)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, GnapError> {
    if !looks_like_id(&id) {
        return Err(DomainError::UnknownInteraction.into());
    }
    let session = cookie(&headers, &cookie_name(&id));
    let outcome = state
        .lifecycle
        .finish_interaction(&id, &nonce, session.as_deref())
        .await?;
    let mut response = match &outcome {
        FinishOutcome::Approved {
            interaction,
            interact_ref,
        } => match (&interaction.finish_uri, &interaction.client_nonce) {
            (Some(uri), Some(client_nonce)) => {
                let hash = interaction_hash(
                    client_nonce,
                    &interaction.nonce,
                    interact_ref,
                    &state.settings.grant_endpoint(),
                );
                found(&with_query(
                    uri,
                    &[("hash", &hash), ("interact_ref", interact_ref)],
                )?)
            }
            _ => Html(render_message(
                "Approved.",
                "You can close this window; the application will pick up your approval.",
            ))
            .into_response(),
        },
        FinishOutcome::Rejected { interaction } => match &interaction.finish_uri {
            Some(uri) => found(&with_query(uri, &[("result", "grant_rejected")])?),
            None => (
                StatusCode::OK,
                Html(render_message(
                    "Request denied.",
                    "You can close this window.",
                )),
            )
                .into_response(),
        },
    };
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&state, &cookie_name(&id), "", 0),
    );
    page_headers(&mut response);
    Ok(response)
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn action_words(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Complete => "complete",
        Action::Read => "read the ones it made",
        Action::ReadAll => "read all",
        Action::List => "list the ones it made",
        Action::ListAll => "list all",
    }
}

fn amount_words(amount: &Amount) -> String {
    format!("{} {}", amount.to_major_units(), amount.asset_code)
}

/// "R12/2019-08-24T14:15:22Z/P1M" -> "every month (12 times, from 2019-08-24T14:15:22Z)".
pub fn interval_words(interval: &str) -> String {
    let parts: Vec<&str> = interval.split('/').collect();
    let period = parts
        .iter()
        .find(|p| p.starts_with('P'))
        .copied()
        .unwrap_or("");
    let unit = match period {
        "P1D" => "every day".to_string(),
        "P1W" => "every week".to_string(),
        "P1M" => "every month".to_string(),
        "P1Y" => "every year".to_string(),
        "" => String::new(),
        other => format!("every {other}"),
    };
    let repeats = parts
        .first()
        .and_then(|r| r.strip_prefix('R'))
        .filter(|n| !n.is_empty())
        .map(|n| format!("{n} times"));
    let start = parts
        .iter()
        .find(|p| !p.starts_with('R') && !p.starts_with('P'))
        .map(|s| format!("from {s}"));
    let details: Vec<String> = repeats.into_iter().chain(start).collect();
    match (unit.is_empty(), details.is_empty()) {
        (true, _) => interval.to_string(),
        (false, true) => unit,
        (false, false) => format!("{unit} ({})", details.join(", ")),
    }
}

/// One requested right in plain words.
pub fn describe_access(item: &AccessItem) -> String {
    let actions: Vec<&str> = item.actions().iter().map(|a| action_words(*a)).collect();
    let mut text = match item {
        AccessItem::OutgoingPayment(_) => format!("Send payments: {}", actions.join(", ")),
        AccessItem::IncomingPayment(_) => format!("Receive payments: {}", actions.join(", ")),
        AccessItem::Quote(_) => format!("Get quotes: {}", actions.join(", ")),
    };
    if let Some(identifier) = item.identifier() {
        text.push_str(&format!(" — account {identifier}"));
    }
    if let AccessItem::OutgoingPayment(out) = item {
        if let Some(limits) = &out.limits {
            if let Some(debit) = &limits.debit_amount {
                text.push_str(&format!(" — up to {} debited", amount_words(debit)));
            }
            if let Some(receive) = &limits.receive_amount {
                text.push_str(&format!(" — up to {} received", amount_words(receive)));
            }
            if let Some(interval) = &limits.interval {
                text.push_str(&format!(", {}", interval_words(interval)));
            }
            if let Some(receiver) = &limits.receiver {
                text.push_str(&format!(" — only to {receiver}"));
            }
        }
    }
    text
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;\
background:#f4f5f7;color:#1b1d21}main{max-width:32rem;margin:0 auto;padding:1.5rem 1rem}\
.card{background:#fff;border-radius:12px;padding:1.25rem;box-shadow:0 1px 3px rgba(0,0,0,.12);overflow-wrap:anywhere}\
h1{font-size:1.25rem;margin:0 0 .75rem}ul{padding-left:1.1rem}li{margin:.5rem 0;line-height:1.4}\
.client{font-weight:600}.muted{color:#5f6570;font-size:.9rem;word-break:break-all}\
.buttons{display:flex;gap:.75rem;margin-top:1.25rem}button{flex:1;font-size:1rem;padding:.8rem;\
border-radius:8px;border:1px solid #c7cbd1;background:#fff;cursor:pointer}\
button.accept{background:#1f6feb;border-color:#1f6feb;color:#fff}";

fn page(title: &str, inner: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main><div class=\"card\">{inner}\
         </div></main></body></html>",
        escape(title)
    )
}

fn render_message(title: &str, text: &str) -> String {
    page(
        title,
        &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(text)),
    )
}

fn render_consent(
    interaction: &Interaction,
    grant: &Grant,
    client_name: &str,
    client_uri: &str,
    csrf: &str,
) -> String {
    let rights: String = grant
        .access
        .iter()
        .map(|item| format!("<li>{}</li>", escape(&describe_access(item))))
        .collect();
    let inner = format!(
        "<h1><span class=\"client\">{name}</span> asks for access</h1>\
         <p class=\"muted\">{uri}</p>\
         <p>It wants to:</p><ul id=\"rights\">{rights}</ul>\
         <form method=\"post\" action=\"/consent/{id}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div class=\"buttons\">\
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button>\
         <button type=\"submit\" name=\"decision\" value=\"accept\" id=\"accept\" class=\"accept\">Accept</button>\
         </div></form>",
        name = escape(client_name),
        uri = escape(client_uri),
        id = escape(&interaction.id),
        csrf = escape(csrf),
    );
    page("Approve access", &inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn describes_rights_in_plain_words() {
        let item: AccessItem = serde_json::from_value(serde_json::json!({
            "type": "outgoing-payment", "actions": ["create", "read"],
            "identifier": "https://w.example/alice",
            "limits": {"debitAmount": {"value": "1050", "assetCode": "USD", "assetScale": 2},
                       "interval": "R12/2019-08-24T14:15:22Z/P1M"}
        }))
        .expect("item");
        let text = describe_access(&item);
        assert!(
            text.contains("Send payments: create, read the ones it made"),
            "{text}"
        );
        assert!(text.contains("up to 10.50 USD debited"), "{text}");
        assert!(
            text.contains("every month (12 times, from 2019-08-24T14:15:22Z)"),
            "{text}"
        );
    }

    #[test]
    fn finds_cookies_and_derives_csrf_from_the_session() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; latchkey_interaction_x=abc"),
        );
        assert_eq!(
            cookie(&headers, "latchkey_interaction_x").as_deref(),
            Some("abc")
        );
        assert_eq!(cookie(&headers, "b"), None);
        assert_ne!(csrf_token("abc"), csrf_token("abd"));
    }

    #[test]
    fn interval_words_handle_other_shapes() {
        assert_eq!(
            interval_words("R/2017-03-01T13:00:00Z/P1W"),
            "every week (from 2017-03-01T13:00:00Z)"
        );
        assert_eq!(interval_words("nonsense"), "nonsense");
    }
}
