//! Sending requests: timeouts, no redirects, error mapping, response parsing, and (for the
//! authenticated client) RFC 9421 signing with `Content-Digest` and `Authorization: GNAP`.

use ed25519_dalek::SigningKey;
use latchkey_proto::digest::content_digest_sha256;
use latchkey_proto::httpsig::{components_for, sign_request, RequestParts};
use reqwest::header::{HeaderName, HeaderValue, ACCEPT};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

use crate::error::{cause_chain, parse_error_body, ClientError};

/// The `User-Agent` the SDK sends.
pub(crate) const USER_AGENT: &str = concat!("latchkey-client/", env!("CARGO_PKG_VERSION"));

/// An HTTP client with the SDK's policies.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    timeout: Duration,
}

/// A response whose status has been checked (2xx).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub url: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// Parses the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::InvalidResponse {
            url: self.url.clone(),
            status: self.status.as_u16(),
            reason: if self.body.is_empty() {
                "expected a JSON body, got none".into()
            } else {
                format!("the body does not match the protocol: {e}")
            },
        })
    }
}

impl Transport {
    /// A client with `timeout` per request. Redirects are not followed: a signed request and its
    /// token are meant for the URL they name, and nowhere else.
    pub fn new(timeout: Duration) -> Result<Transport, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| {
                ClientError::InvalidConfig(format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(Transport { http, timeout })
    }

    /// Sends `request`; a 2xx answer is returned, anything else becomes an error.
    pub async fn send(&self, request: reqwest::Request) -> Result<Answer, ClientError> {
        let url = request.url().to_string();
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.transport_error(&url, &e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&url, &e))?
            .to_vec();
        if status.is_success() {
            return Ok(Answer { status, url, body });
        }
        let parts = parse_error_body(&body);
        Err(ClientError::Server {
            status: status.as_u16(),
            code: parts.code,
            description: parts.description.or_else(|| {
                status
                    .canonical_reason()
                    .map(|r| format!("{r} (no error description in the response)"))
            }),
            url,
        })
    }

    fn transport_error(&self, url: &str, e: &reqwest::Error) -> ClientError {
        let url = url.to_string();
        if e.is_timeout() {
            ClientError::Timeout {
                url,
                timeout: self.timeout,
            }
        } else if e.is_connect() {
            ClientError::Unreachable {
                url,
                reason: cause_chain(e),
            }
        } else {
            ClientError::Http {
                url,
                reason: cause_chain(e),
            }
        }
    }

    /// An unsigned request with `Accept: application/json`.
    pub fn plain(&self, method: Method, url: &Url) -> reqwest::RequestBuilder {
        self.http
            .request(method, url.clone())
            .header(ACCEPT, "application/json")
    }
}

/// Signs requests with the client's Ed25519 key.
#[derive(Clone)]
pub(crate) struct Signer {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The signed headers of a request, in the order they are sent.
pub(crate) struct SignedHeaders {
    pub headers: Vec<(String, String)>,
}

impl Signer {
    pub fn new(key: SigningKey, key_id: String) -> Signer {
        Signer { key, key_id }
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The headers of a signed Open Payments request:
    ///
    /// * `Authorization: GNAP <token>` when a token is given (RFC 9635 §7.2);
    /// * with a body, `Content-Type: application/json`, `Content-Length` and
    ///   `Content-Digest: sha-256=:…:` (RFC 9530);
    /// * `Signature-Input` / `Signature` (RFC 9421, label `sig1`, Ed25519) covering `@method`,
    ///   `@target-uri`, `authorization` when present, and the three body headers when there is a
    ///   body: the set the official Node client signs.
    pub fn headers(
        &self,
        method: &Method,
        url: &Url,
        access_token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<SignedHeaders, ClientError> {
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(token) = access_token {
            check_token(token)?;
            headers.push(("authorization".into(), format!("GNAP {token}")));
        }
        if let Some(body) = body {
            headers.push(("content-type".into(), "application/json".into()));
            headers.push(("content-length".into(), body.len().to_string()));
            headers.push(("content-digest".into(), content_digest_sha256(body)));
        }
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let components = components_for(body.is_some(), access_token.is_some());
        let parts = RequestParts {
            method: method.as_str(),
            target_uri: url.as_str(),
            headers: &headers,
        };
        let signature = sign_request(&parts, &components, &self.key_id, created, &self.key)?;
        headers.push(("signature-input".into(), signature.signature_input));
        headers.push(("signature".into(), signature.signature));
        Ok(SignedHeaders { headers })
    }

    /// A signed request ready to send.
    pub fn request(
        &self,
        transport: &Transport,
        method: Method,
        url: &Url,
        access_token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Request, ClientError> {
        let signed = self.headers(&method, url, access_token, body.as_deref())?;
        let mut builder = transport.plain(method, url);
        for (name, value) in signed.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ClientError::InvalidArgument(format!("header name {name}: {e}")))?;
            let value = HeaderValue::from_str(&value)
                .map_err(|e| ClientError::InvalidArgument(format!("header {name}: {e}")))?;
            builder = builder.header(name, value);
        }
        if let Some(body) = body {
            builder = builder.body(body);
        }
        builder
            .build()
            .map_err(|e| ClientError::InvalidArgument(format!("cannot build the request: {e}")))
    }
}

/// A token must be a non-empty run of visible ASCII to go into `Authorization: GNAP <token>`.
pub(crate) fn check_token(token: &str) -> Result<(), ClientError> {
    if token.is_empty() {
        return Err(ClientError::InvalidArgument(
            "the access token is empty".into(),
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ClientError::InvalidArgument(
            "the access token holds spaces, control or non-ASCII characters".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_proto::httpsig::parse_signature;
    use latchkey_proto::keys::generate_signing_key;

    #[test]
    fn signed_headers_verify_and_cover_what_the_server_requires() {
        let key = generate_signing_key();
        let signer = Signer::new(key.clone(), "k1".into());
        let url = Url::parse("http://127.0.0.1:9/token/abc").expect("url");
        let body = br#"{"a":1}"#;
        let signed = signer
            .headers(&Method::POST, &url, Some("tok"), Some(body))
            .expect("signs");
        let find = |n: &str| {
            signed
                .headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .expect(n)
        };
        assert_eq!(find("authorization"), "GNAP tok");
        assert_eq!(find("content-digest"), content_digest_sha256(body));
        let input = find("signature-input");
        assert!(input.starts_with(
            "sig1=(\"@method\" \"@target-uri\" \"authorization\" \"content-digest\" \
             \"content-length\" \"content-type\");keyid=\"k1\";created="
        ));
        assert!(find("signature").starts_with("sig1=:"));
        let parts = RequestParts {
            method: "POST",
            target_uri: url.as_str(),
            headers: &signed.headers,
        };
        let parsed = parse_signature(&parts, &input, &find("signature")).expect("parses");
        parsed.verify(&key.verifying_key()).expect("verifies");
        parsed
            .check_required_components(true, true)
            .expect("required components");
    }

    #[test]
    fn bodiless_requests_sign_without_digest() {
        let signer = Signer::new(generate_signing_key(), "k1".into());
        let url = Url::parse("http://127.0.0.1:9/continue/abc").expect("url");
        let signed = signer
            .headers(&Method::DELETE, &url, Some("tok"), None)
            .expect("signs");
        assert!(!signed.headers.iter().any(|(k, _)| k == "content-digest"));
        assert!(!signed.headers.iter().any(|(k, _)| k == "content-type"));
    }

    #[test]
    fn bad_tokens_are_refused_before_sending() {
        let signer = Signer::new(generate_signing_key(), "k1".into());
        let url = Url::parse("http://127.0.0.1:9/token/abc").expect("url");
        for bad in ["", "has space", "new\nline", "ünïcode"] {
            assert!(matches!(
                signer.headers(&Method::DELETE, &url, Some(bad), None),
                Err(ClientError::InvalidArgument(_))
            ));
        }
    }
}
