//! Open Payments / GNAP requests, signed as a real client signs them (RFC 9421 Ed25519 over
//! `@method`, `@target-uri`, `authorization` when a token is sent, and with a body
//! `content-digest`, `content-length`, `content-type`).

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;
use hyper::body::Bytes;
use hyper::http::{HeaderName, HeaderValue, Method};
use latchkey_proto::digest::content_digest_sha256;
use latchkey_proto::httpsig::{components_for, sign_request, RequestParts};
use std::time::{SystemTime, UNIX_EPOCH};

use super::transport::Outgoing;

/// The client identity the requests are signed with.
pub struct Signer {
    /// Ed25519 private key.
    pub key: SigningKey,
    /// `keyid` of the key in the wallet address's JWKS.
    pub key_id: String,
    /// The client's wallet address URL.
    pub wallet_address: String,
}

/// One grant prepared before the timed phase: its access token and continuation.
#[derive(Clone, Debug)]
pub struct PreparedGrant {
    /// Access token value.
    pub token: String,
    /// Token manage URL.
    pub manage: String,
    /// Continue URI.
    pub continue_uri: String,
    /// Continuation token value.
    pub continue_token: String,
}

/// A rotated token: its new value and manage URL.
#[derive(Clone, Debug)]
pub struct RotatedToken {
    /// Access token value.
    pub token: String,
    /// Token manage URL.
    pub manage: String,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn header(name: &'static str, value: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    Ok((
        HeaderName::from_static(name),
        HeaderValue::from_str(value).with_context(|| format!("bad {name} header value"))?,
    ))
}

impl Signer {
    /// A signed request. `token` goes into `Authorization: GNAP <token>`.
    pub fn request(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Outgoing> {
        let mut plain: Vec<(String, String)> = Vec::with_capacity(4);
        if let Some(token) = token {
            plain.push(("authorization".into(), format!("GNAP {token}")));
        }
        if let Some(body) = &body {
            plain.push(("content-digest".into(), content_digest_sha256(body)));
            plain.push(("content-length".into(), body.len().to_string()));
            plain.push(("content-type".into(), "application/json".into()));
        }
        let parts = RequestParts {
            method: method.as_str(),
            target_uri: url,
            headers: &plain,
        };
        let components = components_for(body.is_some(), token.is_some());
        let signed = sign_request(&parts, &components, &self.key_id, unix_now(), &self.key)
            .context("cannot sign the request")?;
        let mut headers = Vec::with_capacity(plain.len() + 3);
        for (name, value) in &plain {
            let name = HeaderName::from_bytes(name.as_bytes()).context("header name")?;
            headers.push((
                name,
                HeaderValue::from_str(value).context("bad header value")?,
            ));
        }
        headers.push(header("signature-input", &signed.signature_input)?);
        headers.push(header("signature", &signed.signature)?);
        headers.push(header("accept", "application/json")?);
        Ok(Outgoing {
            method,
            url: url.to_string(),
            headers,
            body: body.map(Bytes::from).unwrap_or_default(),
        })
    }

    /// `POST {grant endpoint}`: a non-interactive incoming-payment grant for the client's own
    /// wallet address (Open Payments issues these at once).
    pub fn grant_request(&self, grant_endpoint: &str) -> anyhow::Result<Outgoing> {
        let body = serde_json::json!({
            "access_token": { "access": [{
                "type": "incoming-payment",
                "actions": ["create", "read", "list"],
                "identifier": self.wallet_address,
            }]},
            "client": self.wallet_address,
        });
        self.request(
            Method::POST,
            grant_endpoint,
            None,
            Some(serde_json::to_vec(&body)?),
        )
    }

    /// `POST {manage}`: rotation.
    pub fn rotate_request(&self, manage: &str, token: &str) -> anyhow::Result<Outgoing> {
        self.request(Method::POST, manage, Some(token), None)
    }

    /// `DELETE {manage}`: revocation.
    pub fn revoke_request(&self, manage: &str, token: &str) -> anyhow::Result<Outgoing> {
        self.request(Method::DELETE, manage, Some(token), None)
    }

    /// `DELETE {continue uri}`: grant cancellation.
    pub fn cancel_request(&self, continue_uri: &str, token: &str) -> anyhow::Result<Outgoing> {
        self.request(Method::DELETE, continue_uri, Some(token), None)
    }
}

/// `POST {private url}/` introspection body (unsigned: the private listener is trusted by
/// network placement).
pub fn introspect_request(private_url: &str, token: &str) -> anyhow::Result<Outgoing> {
    let body = serde_json::to_vec(&serde_json::json!({ "access_token": token }))?;
    Ok(Outgoing {
        method: Method::POST,
        url: format!("{}/", private_url.trim_end_matches('/')),
        headers: vec![
            header("content-type", "application/json")?,
            header("accept", "application/json")?,
        ],
        body: Bytes::from(body),
    })
}

fn str_at<'a>(value: &'a serde_json::Value, path: &[&str]) -> anyhow::Result<&'a str> {
    let mut v = value;
    for key in path {
        v = &v[*key];
    }
    v.as_str()
        .with_context(|| format!("the response has no string at {}", path.join(".")))
}

/// Reads a grant response.
pub fn parse_grant(body: &[u8]) -> anyhow::Result<PreparedGrant> {
    let v: serde_json::Value =
        serde_json::from_slice(body).context("the grant response is not JSON")?;
    if v.get("access_token").is_none() {
        bail!("the grant was not issued at once (no access_token): is interaction required?");
    }
    Ok(PreparedGrant {
        token: str_at(&v, &["access_token", "value"])?.to_string(),
        manage: str_at(&v, &["access_token", "manage"])?.to_string(),
        continue_uri: str_at(&v, &["continue", "uri"])?.to_string(),
        continue_token: str_at(&v, &["continue", "access_token", "value"])?.to_string(),
    })
}

/// Reads a rotation response.
pub fn parse_rotation(body: &[u8]) -> anyhow::Result<RotatedToken> {
    let v: serde_json::Value =
        serde_json::from_slice(body).context("the rotation response is not JSON")?;
    Ok(RotatedToken {
        token: str_at(&v, &["access_token", "value"])?.to_string(),
        manage: str_at(&v, &["access_token", "manage"])?.to_string(),
    })
}

/// True when an introspection answer says the token is active (a byte search: the generator
/// should not spend its CPU parsing JSON it only checks).
pub fn is_active(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"active\":true";
    body.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_proto::httpsig::parse_request_signature;

    fn signer() -> Signer {
        Signer {
            key: latchkey_proto::keys::generate_signing_key(),
            key_id: "k1".into(),
            wallet_address: "http://127.0.0.1:1/alice".into(),
        }
    }

    #[test]
    fn signed_grant_request_verifies() {
        let s = signer();
        let out = s.grant_request("http://127.0.0.1:1/").expect("request");
        let headers: Vec<(String, String)> = out
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    v.to_str().expect("ascii").to_string(),
                )
            })
            .collect();
        let parts = RequestParts {
            method: "POST",
            target_uri: &out.url,
            headers: &headers,
        };
        let parsed = parse_request_signature(&parts).expect("parse");
        parsed.verify(&s.key.verifying_key()).expect("verifies");
        parsed
            .check_required_components(true, false)
            .expect("components");
    }

    #[test]
    fn reads_responses() {
        let g = parse_grant(
            br#"{"access_token":{"value":"t","manage":"m","access":[]},
                "continue":{"uri":"c","access_token":{"value":"ct"}}}"#,
        )
        .expect("grant");
        assert_eq!(
            (g.token.as_str(), g.manage.as_str(), g.continue_uri.as_str()),
            ("t", "m", "c")
        );
        assert_eq!(g.continue_token, "ct");
        assert!(parse_grant(br#"{"continue":{}}"#).is_err());
        let r = parse_rotation(br#"{"access_token":{"value":"n","manage":"m2"}}"#).expect("rot");
        assert_eq!(r.token, "n");
        assert!(is_active(br#"{"active":true,"grant":"x"}"#));
        assert!(!is_active(br#"{"active":false}"#));
    }
}
