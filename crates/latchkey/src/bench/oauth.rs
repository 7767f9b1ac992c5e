//! OAuth 2.0 requests as the Kopo Kopo SDKs send them: form bodies, client credentials by
//! HTTP Basic (RFC 6749 §2.3.1, each part form-url-encoded before base64).

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hyper::body::Bytes;
use hyper::http::{HeaderName, HeaderValue, Method};

use super::transport::Outgoing;

/// A confidential OAuth client.
pub struct OAuthCreds {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: String,
}

impl OAuthCreds {
    fn basic(&self) -> anyhow::Result<HeaderValue> {
        let pair = format!(
            "{}:{}",
            urlencoding::encode(&self.client_id),
            urlencoding::encode(&self.client_secret)
        );
        let mut value = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(pair)))
            .context("bad client credentials")?;
        value.set_sensitive(true);
        Ok(value)
    }

    fn form(&self, url: &str, form: &str) -> anyhow::Result<Outgoing> {
        Ok(Outgoing {
            method: Method::POST,
            url: url.to_string(),
            headers: vec![
                (hyper::header::AUTHORIZATION, self.basic()?),
                (
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                ),
                (
                    HeaderName::from_static("accept"),
                    HeaderValue::from_static("application/json"),
                ),
            ],
            body: Bytes::from(form.to_string()),
        })
    }

    /// `POST /oauth/token` with `grant_type=client_credentials` (RFC 6749 §4.4).
    pub fn token_request(&self, base: &str) -> anyhow::Result<Outgoing> {
        self.form(
            &format!("{}/oauth/token", base.trim_end_matches('/')),
            "grant_type=client_credentials",
        )
    }

    /// `POST /oauth/revoke` (RFC 7009).
    pub fn revoke_request(&self, base: &str, token: &str) -> anyhow::Result<Outgoing> {
        self.form(
            &format!("{}/oauth/revoke", base.trim_end_matches('/')),
            &format!("token={}", urlencoding::encode(token)),
        )
    }

    /// `POST /oauth/introspect` (RFC 7662).
    pub fn introspect_request(&self, base: &str, token: &str) -> anyhow::Result<Outgoing> {
        self.form(
            &format!("{}/oauth/introspect", base.trim_end_matches('/')),
            &format!("token={}", urlencoding::encode(token)),
        )
    }
}

/// The `access_token` of a token response.
pub fn parse_token(body: &[u8]) -> anyhow::Result<String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).context("the token response is not JSON")?;
    v["access_token"]
        .as_str()
        .map(str::to_string)
        .context("the token response has no access_token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_then_base64() {
        let c = OAuthCreds {
            client_id: "a b".into(),
            client_secret: "s:1".into(),
        };
        let out = c.token_request("http://h/").expect("request");
        assert_eq!(out.url, "http://h/oauth/token");
        let auth = out.headers[0].1.to_str().expect("ascii").to_string();
        let decoded = STANDARD
            .decode(auth.trim_start_matches("Basic "))
            .expect("b64");
        assert_eq!(decoded, b"a%20b:s%3A1");
        assert_eq!(parse_token(br#"{"access_token":"x"}"#).expect("token"), "x");
    }
}
