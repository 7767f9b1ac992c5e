//! HTTP Message Signatures (RFC 9421), Ed25519 only, as Open Payments / GNAP (RFC 9635 §7.3.1)
//! uses them: sign a request ([`sign_request`]) and check a received one ([`parse_signature`],
//! then [`ParsedSignature::verify`], [`ParsedSignature::check_required_components`] and
//! [`ParsedSignature::check_created`]).
//!
//! # What the official clients send
//!
//! **Node** (`@interledger/http-signature-utils` 2.0.3, used by `@interledger/open-payments`),
//! strict RFC 9421:
//!
//! ```text
//! Signature-Input: sig1=("@method" "@target-uri" "authorization" "content-digest" "content-length" "content-type");keyid="k1";created=1700000000
//! Signature: sig1=:BASE64:
//! Content-Digest: sha-512=:BASE64:
//! ```
//!
//! **Rust** (crates.io `open-payments` 0.2.0, `src/http_signature/signatures.rs`,
//! `create_signature_headers`), a dialect:
//!
//! ```text
//! Signature-Input: sig1=(@method @target-uri content-type authorization content-digest content-length);created=1700000000;keyid="k1"
//! Signature: BASE64
//! Content-Digest: sha-512=:BASE64:
//! ```
//!
//! * the covered components are written *unquoted* in `Signature-Input` (not valid RFC 8941:
//!   `@method` is not even an sf-token);
//! * the signature base it signs nevertheless writes each component line with a *quoted*
//!   identifier, exactly like RFC 9421 (`"@method": POST`), and
//! * its `"@signature-params"` line is the *unquoted* text that follows `sig1=` in its
//!   `Signature-Input` (`(@method @target-uri ...);created=...;keyid="k1"`), byte for byte;
//! * `Signature` is the bare standard base64 of the 64 signature bytes, with no `sig1=:...:`;
//! * `content-type` is always covered (the crate always sends `Content-Type: application/json`,
//!   even on `DELETE`), `authorization` when a token is sent, `content-digest` and
//!   `content-length` when there is a body; `created` comes before `keyid`.
//!
//! So a verifier that (a) reads bare words as component names, (b) always writes
//! `"name": value` lines, (c) takes the `@signature-params` value verbatim from the received
//! header text and (d) accepts a bare base64 `Signature` verifies both clients, and that is what
//! [`parse_signature`] does. The committed vectors `tests/vectors/rust-sdk-open-payments-0.2.0.json`
//! were produced by that crate itself (`interop/vectors/rust-sdk/`).

pub(crate) mod sf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey, SIGNATURE_LENGTH};
use thiserror::Error;

use self::sf::{BareItem, MemberValue};

/// The label Latchkey signs with and prefers when a request carries several signatures.
pub const DEFAULT_LABEL: &str = "sig1";

/// The only `alg` value accepted (RFC 9421 §6.2.2 registry name of §3.3.6).
pub const ALG_ED25519: &str = "ed25519";

/// Why a request signature was refused, or could not be produced.
///
/// The `Display` texts are written for the client developer: they become GNAP `invalid_client`
/// error descriptions.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// `Signature-Input` or `Signature` is missing or empty.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// `Signature-Input` cannot be read.
    #[error("malformed Signature-Input header: {0}")]
    MalformedSignatureInput(String),
    /// `Signature` cannot be read.
    #[error("malformed Signature header: {0}")]
    MalformedSignature(String),
    /// `Signature-Input` has no `keyid` parameter.
    #[error("Signature-Input has no keyid parameter")]
    MissingKeyId,
    /// A component the server requires is not covered by the signature.
    #[error("signature does not cover required component {0}")]
    MissingRequiredComponent(String),
    /// A covered header component is not present in the request.
    #[error("covered component {0} is absent from the request")]
    ComponentHeaderAbsent(String),
    /// A covered component is not one this server can compute.
    #[error("unsupported signature component {0}")]
    UnsupportedComponent(String),
    /// A covered component's value cannot go into a signature base (non-ASCII, line break).
    #[error("covered component {0} has a value that cannot be signed (non-ASCII or line break)")]
    InvalidComponentValue(String),
    /// The signature has no `created` parameter.
    #[error("signature has no created parameter")]
    CreatedMissing,
    /// `created` is further in the past than the allowed window.
    #[error("signature created at {created} is more than {window_secs} s old (now {now})")]
    CreatedTooOld {
        /// The `created` parameter.
        created: i64,
        /// The server's clock.
        now: i64,
        /// The allowed window.
        window_secs: i64,
    },
    /// `created` is further in the future than the allowed window.
    #[error(
        "signature created at {created} is more than {window_secs} s in the future (now {now})"
    )]
    CreatedInFuture {
        /// The `created` parameter.
        created: i64,
        /// The server's clock.
        now: i64,
        /// The allowed window.
        window_secs: i64,
    },
    /// The `expires` parameter has passed.
    #[error("signature expired at {expires} (now {now})")]
    Expired {
        /// The `expires` parameter.
        expires: i64,
        /// The server's clock.
        now: i64,
    },
    /// `alg` names something other than `ed25519`.
    #[error("unsupported signature algorithm {0:?}: only ed25519 is accepted")]
    UnsupportedAlg(String),
    /// A parameter given to [`sign_request`] cannot be serialised.
    #[error("invalid signature parameter: {0}")]
    InvalidParameter(String),
    /// The Ed25519 verification failed.
    #[error("signature verification failed")]
    BadSignature,
}

/// A view of the request being signed or verified.
///
/// Header names should be lower-case; lookups are case-insensitive anyway. A header that occurs
/// several times appears as several entries, in received order.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The request method, e.g. `POST`.
    pub method: &'a str,
    /// The full target URI as the client addressed it, e.g. `https://auth.example/continue/abc`.
    pub target_uri: &'a str,
    /// The request headers, `(name, value)`.
    pub headers: &'a [(String, String)],
}

impl RequestParts<'_> {
    /// The value of header `name` as RFC 9421 §2.1 canonicalises it, or `None` if absent.
    ///
    /// RFC 9421 §2.1: "Strip leading and trailing whitespace from each item in the list." ...
    /// "Remove any obsolete line folding within the line, and replace it with a single space
    /// (" ")" ... "Concatenate the list of values with a single comma (",") and a single space
    /// (" ") between each item."
    pub fn header(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for (n, v) in self.headers {
            if !n.eq_ignore_ascii_case(name) {
                continue;
            }
            let value = unfold(v.trim_matches(|c| c == ' ' || c == '\t'));
            match &mut out {
                None => out = Some(value),
                Some(acc) => {
                    acc.push_str(", ");
                    acc.push_str(&value);
                }
            }
        }
        out
    }
}

/// Replaces obs-fold (CRLF or LF followed by spaces/tabs) with one space.
fn unfold(value: &str) -> String {
    if !value.contains(['\r', '\n']) {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' || c == '\n' {
            let mut folded = false;
            while let Some(&n) = chars.peek() {
                if n == '\r' || n == '\n' {
                    chars.next();
                } else if n == ' ' || n == '\t' {
                    folded = true;
                    chars.next();
                } else {
                    break;
                }
            }
            if folded {
                // Trailing whitespace before the fold is part of the fold.
                while out.ends_with([' ', '\t']) {
                    out.pop();
                }
                out.push(' ');
            } else {
                // A bare line break is not a fold: keep it so the value is refused later.
                out.push('\n');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The pieces of an absolute target URI, without any normalisation of path or query.
struct UriParts<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

fn split_uri(uri: &str) -> Option<UriParts<'_>> {
    let (scheme, rest) = uri.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    let rest = &rest[auth_end..];
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    Some(UriParts {
        scheme,
        authority,
        path,
        query,
    })
}

/// Whether `name` is a derived component this module computes.
fn is_supported_derived(name: &str) -> bool {
    matches!(
        name,
        "@method"
            | "@target-uri"
            | "@authority"
            | "@scheme"
            | "@request-target"
            | "@path"
            | "@query"
    )
}

/// Checks a component name from a signature: lower-case, known if derived, not
/// `@signature-params`.
fn check_component_name(name: &str) -> Result<(), SignatureError> {
    if name.is_empty() {
        return Err(SignatureError::MalformedSignatureInput(
            "empty component identifier".into(),
        ));
    }
    if name == "@signature-params" {
        return Err(SignatureError::MalformedSignatureInput(
            "@signature-params cannot be a covered component".into(),
        ));
    }
    // RFC 9421 §2.1: "The component name for an HTTP field is the lowercased form of its field
    // name".
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(SignatureError::MalformedSignatureInput(format!(
            "component identifier {name} must be lower-case"
        )));
    }
    if let Some(rest) = name.strip_prefix('@') {
        if rest.is_empty() || !is_supported_derived(name) {
            return Err(SignatureError::UnsupportedComponent(name.to_string()));
        }
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(SignatureError::MalformedSignatureInput(format!(
            "{name:?} is not a valid header field name"
        )));
    }
    Ok(())
}

/// The canonical value of one covered component (RFC 9421 §2.1, §2.2).
fn component_value(parts: &RequestParts<'_>, name: &str) -> Result<String, SignatureError> {
    let uri = || {
        split_uri(parts.target_uri).ok_or_else(|| {
            SignatureError::UnsupportedComponent(format!("{name} (the target URI is not absolute)"))
        })
    };
    let value = match name {
        // RFC 9421 §2.2.1 takes the method as it appears in the request, case unchanged. HTTP
        // methods are case-sensitive and every standard one is upper-case; the Node signer
        // (http-message-signatures) upper-cases before signing, so we do the same.
        "@method" => parts.method.to_ascii_uppercase(),
        // RFC 9421 §2.2.2: "The component value is the target URI of the request ([HTTP],
        // Section 7.1), assembled from all available URI components, including the authority."
        // It is taken exactly as the server reconstructed it; no normalisation.
        "@target-uri" => parts.target_uri.to_string(),
        // RFC 9421 §2.2.3: "the hostname is normalized to lowercase, and the default port is
        // omitted."
        "@authority" => {
            let u = uri()?;
            let host_port = u.authority.rsplit_once('@').map_or(u.authority, |(_, h)| h);
            let lower = host_port.to_ascii_lowercase();
            let scheme = u.scheme.to_ascii_lowercase();
            let default_port = match scheme.as_str() {
                "https" => Some(":443"),
                "http" => Some(":80"),
                _ => None,
            };
            match default_port {
                Some(p) if lower.ends_with(p) => lower[..lower.len() - p.len()].to_string(),
                _ => lower,
            }
        }
        // RFC 9421 §2.2.4: the scheme of the target URI, lower-case.
        "@scheme" => uri()?.scheme.to_ascii_lowercase(),
        // RFC 9421 §2.2.5: the request target as in the request line (origin form).
        "@request-target" => {
            let u = uri()?;
            let path = if u.path.is_empty() { "/" } else { u.path };
            match u.query {
                Some(q) => format!("{path}?{q}"),
                None => path.to_string(),
            }
        }
        // RFC 9421 §2.2.6: "an empty path string is normalized as a single slash ("/")
        // character."
        "@path" => {
            let u = uri()?;
            if u.path.is_empty() {
                "/".to_string()
            } else {
                u.path.to_string()
            }
        }
        // RFC 9421 §2.2.7: "If the query string is absent from the request message, the
        // component value is the leading ? character alone".
        "@query" => format!("?{}", uri()?.query.unwrap_or_default()),
        _ if name.starts_with('@') => {
            return Err(SignatureError::UnsupportedComponent(name.to_string()))
        }
        _ => parts
            .header(name)
            .ok_or_else(|| SignatureError::ComponentHeaderAbsent(name.to_string()))?,
    };
    // RFC 9421 §2.5: "Produce an error if the output string contains any non-ASCII characters".
    // A line break inside a value would also let one line pose as another.
    if !value.is_ascii() || value.contains(['\r', '\n']) {
        return Err(SignatureError::InvalidComponentValue(name.to_string()));
    }
    Ok(value)
}

/// Builds the signature base (RFC 9421 §2.5) from the covered component names and the exact
/// `@signature-params` value.
fn build_signature_base(
    parts: &RequestParts<'_>,
    components: &[String],
    signature_params: &str,
) -> Result<String, SignatureError> {
    let mut base = String::new();
    for name in components {
        // "Append the component identifier for the covered component serialized according to
        // the component-identifier ABNF rule" -- always as an sf-string, `"name"`, which is also
        // what the Rust SDK writes in its base even though its Signature-Input is unquoted.
        base.push('"');
        base.push_str(name);
        base.push_str("\": ");
        base.push_str(&component_value(parts, name)?);
        base.push('\n');
    }
    if !signature_params.is_ascii() || signature_params.contains(['\r', '\n']) {
        return Err(SignatureError::MalformedSignatureInput(
            "non-ASCII or line break in signature parameters".into(),
        ));
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(signature_params);
    Ok(base)
}

/// A received signature, parsed, with its signature base rebuilt from the request.
#[derive(Debug, Clone)]
pub struct ParsedSignature {
    label: String,
    keyid: String,
    created: Option<i64>,
    expires: Option<i64>,
    alg: Option<String>,
    nonce: Option<String>,
    components: Vec<String>,
    quoted_components: bool,
    bare_signature: bool,
    signature_params: String,
    signature_base: String,
    signature: [u8; SIGNATURE_LENGTH],
}

impl ParsedSignature {
    /// The signature's label (`sig1` for both official clients).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The `keyid` parameter: the `kid` of the client's JWK.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The `created` parameter, a UNIX time in seconds.
    pub fn created(&self) -> Option<i64> {
        self.created
    }

    /// The `expires` parameter, a UNIX time in seconds.
    pub fn expires(&self) -> Option<i64> {
        self.expires
    }

    /// The `alg` parameter; when present it is `ed25519` (anything else is refused at parse time).
    pub fn alg(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    /// The `nonce` parameter.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// The covered component names, in signed order, without quotes.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// Whether the signature covers component `name`.
    pub fn covers(&self, name: &str) -> bool {
        self.components.iter().any(|c| c == name)
    }

    /// `false` when the client used the unquoted component dialect of the Rust `open-payments`
    /// crate 0.2 (`(@method @target-uri ...)`).
    pub fn components_quoted(&self) -> bool {
        self.quoted_components
    }

    /// `true` when the `Signature` header was bare base64 rather than `label=:base64:`.
    pub fn signature_was_bare(&self) -> bool {
        self.bare_signature
    }

    /// The `@signature-params` value exactly as received (the text after `label=`).
    pub fn signature_params(&self) -> &str {
        &self.signature_params
    }

    /// The signature base rebuilt from the request.
    pub fn signature_base(&self) -> &str {
        &self.signature_base
    }

    /// Checks the signature with the client's key.
    ///
    /// RFC 9421 §3.3.6: "To verify using this algorithm, the signer applies the Ed25519
    /// algorithm defined in Section 5.1.7 of \[RFC8032\] using the public key portion of the
    /// verification key material (A) and the signature base recreated as described in
    /// Section 3.2. The signature base is taken as the input message (M) with no prehash
    /// function." Strict verification also refuses small-order keys and non-canonical points.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), SignatureError> {
        let signature = Signature::from_bytes(&self.signature);
        key.verify_strict(self.signature_base.as_bytes(), &signature)
            .map_err(|_| SignatureError::BadSignature)
    }

    /// Checks that the signature covers what Open Payments requires: `@method`, `@target-uri`,
    /// `authorization` when the request carries that header, and `content-digest` when it has a
    /// body. RFC 9635 §7.3.1 (HTTP message signatures as a GNAP key proofing method) asks the
    /// signer to cover the method and target URI, the `Authorization` field when one is sent,
    /// and, for a message with content, `Content-Digest`. The caller still has to check the
    /// digest itself with [`crate::digest::verify_content_digest`].
    pub fn check_required_components(
        &self,
        has_body: bool,
        has_authorization: bool,
    ) -> Result<(), SignatureError> {
        let mut required = vec!["@method", "@target-uri"];
        if has_authorization {
            required.push("authorization");
        }
        if has_body {
            required.push("content-digest");
        }
        for name in required {
            if !self.covers(name) {
                return Err(SignatureError::MissingRequiredComponent(name.to_string()));
            }
        }
        Ok(())
    }

    /// Checks `created` (required) against `now_unix`, allowing `window_secs` either way, and
    /// `expires` when present.
    ///
    /// RFC 9421 §3.2.1: a verifier may reject signatures whose `created` is too far in the past,
    /// and should reject them once `expires` has passed.
    pub fn check_created(&self, now_unix: i64, window_secs: i64) -> Result<(), SignatureError> {
        let created = self.created.ok_or(SignatureError::CreatedMissing)?;
        if created < now_unix.saturating_sub(window_secs) {
            return Err(SignatureError::CreatedTooOld {
                created,
                now: now_unix,
                window_secs,
            });
        }
        if created > now_unix.saturating_add(window_secs) {
            return Err(SignatureError::CreatedInFuture {
                created,
                now: now_unix,
                window_secs,
            });
        }
        if let Some(expires) = self.expires {
            if expires < now_unix {
                return Err(SignatureError::Expired {
                    expires,
                    now: now_unix,
                });
            }
        }
        Ok(())
    }
}

/// Reads the `Signature-Input` and `Signature` headers of `parts` and parses them with
/// [`parse_signature`]. Several instances of a header are joined with `", "`.
pub fn parse_request_signature(
    parts: &RequestParts<'_>,
) -> Result<ParsedSignature, SignatureError> {
    let input = parts
        .header("signature-input")
        .ok_or(SignatureError::MissingHeader("Signature-Input"))?;
    let signature = parts
        .header("signature")
        .ok_or(SignatureError::MissingHeader("Signature"))?;
    parse_signature(parts, &input, &signature)
}

/// Parses a received signature and rebuilds its signature base from the request.
///
/// Accepts both official client dialects (see the module documentation): components quoted or
/// not, parameters in any order, `Signature` as `label=:base64:` or bare base64. When
/// `Signature-Input` holds several signatures, `sig1` is used if present, otherwise the first.
/// The `@signature-params` line is the received text after `label=`, byte for byte.
pub fn parse_signature(
    parts: &RequestParts<'_>,
    signature_input: &str,
    signature: &str,
) -> Result<ParsedSignature, SignatureError> {
    let signature_input = signature_input.trim();
    if signature_input.is_empty() {
        return Err(SignatureError::MissingHeader("Signature-Input"));
    }
    let signature = signature.trim();
    if signature.is_empty() {
        return Err(SignatureError::MissingHeader("Signature"));
    }

    // RFC 9421 §4.1: "The Signature-Input field is a Dictionary Structured Field ... Each member
    // describes a single message signature. The member's key is the label that uniquely
    // identifies the message signature within the HTTP message."
    let members = sf::parse_dictionary(signature_input)
        .map_err(|e| SignatureError::MalformedSignatureInput(e.to_string()))?;
    let member = members
        .iter()
        .find(|m| m.key == DEFAULT_LABEL)
        .or_else(|| members.first())
        .ok_or_else(|| SignatureError::MalformedSignatureInput("no signature in it".into()))?;
    let items = match &member.value {
        MemberValue::InnerList(items) => items,
        MemberValue::Item(_) => {
            return Err(SignatureError::MalformedSignatureInput(format!(
                "{} is not a list of covered components",
                member.key
            )))
        }
    };

    let mut components: Vec<String> = Vec::with_capacity(items.len());
    let mut quoted_components = true;
    for item in items {
        if !item.params.is_empty() {
            return Err(SignatureError::UnsupportedComponent(format!(
                "{} with parameters",
                item.value
            )));
        }
        check_component_name(&item.value)?;
        // RFC 9421 §2.5: "If the component identifier (including its parameters) has already
        // been added to the signature base, produce an error."
        if components.contains(&item.value) {
            return Err(SignatureError::MalformedSignatureInput(format!(
                "component {} is listed twice",
                item.value
            )));
        }
        quoted_components &= item.quoted;
        components.push(item.value.clone());
    }

    let mut keyid = None;
    let mut created = None;
    let mut expires = None;
    let mut alg = None;
    let mut nonce = None;
    for (name, value) in &member.params {
        let bad = |what: &str| {
            SignatureError::MalformedSignatureInput(format!("parameter {name} must be {what}"))
        };
        match name.as_str() {
            // RFC 9421 §2.3: "created: Creation time as a UNIX timestamp value of type Integer."
            "created" => match value {
                BareItem::Integer(t) => created = Some(*t),
                _ => return Err(bad("an integer")),
            },
            "expires" => match value {
                BareItem::Integer(t) => expires = Some(*t),
                _ => return Err(bad("an integer")),
            },
            "keyid" => match value {
                BareItem::String(s) | BareItem::Token(s) => keyid = Some(s.clone()),
                _ => return Err(bad("a string")),
            },
            "alg" => match value {
                BareItem::String(s) | BareItem::Token(s) => alg = Some(s.clone()),
                _ => return Err(bad("a string")),
            },
            "nonce" => match value {
                BareItem::String(s) | BareItem::Token(s) => nonce = Some(s.clone()),
                _ => return Err(bad("a string")),
            },
            // Other parameters (`tag`, extensions) are signed as received and otherwise ignored.
            _ => {}
        }
    }
    if let Some(a) = &alg {
        if a != ALG_ED25519 {
            return Err(SignatureError::UnsupportedAlg(a.clone()));
        }
    }
    let keyid = keyid.ok_or(SignatureError::MissingKeyId)?;

    let (signature, bare_signature) = read_signature_value(signature, &member.key)?;

    // RFC 9421 §4.1: "To facilitate signature validation, the Signature-Input field value MUST
    // contain the same serialized value used in generating the signature base's
    // @signature-params value defined in Section 2.3. Note that in a Structured Field value,
    // list order and parameter order have to be preserved." We take that text as received, so
    // parameter order, and the Rust SDK's unquoted components, are signed exactly as sent.
    let signature_params = signature_input[member.value_span.clone()].to_string();
    let signature_base = build_signature_base(parts, &components, &signature_params)?;

    Ok(ParsedSignature {
        label: member.key.clone(),
        keyid,
        created,
        expires,
        alg,
        nonce,
        components,
        quoted_components,
        bare_signature,
        signature_params,
        signature_base,
        signature,
    })
}

/// Reads the signature bytes for `label` from a `Signature` header: an RFC 9421 §4.2 dictionary
/// (`label=:base64:`), or, as the Rust SDK 0.2 sends it, bare base64.
fn read_signature_value(
    signature: &str,
    label: &str,
) -> Result<([u8; SIGNATURE_LENGTH], bool), SignatureError> {
    let (bytes, bare) = if signature.contains(':') {
        let members = sf::parse_dictionary(signature)
            .map_err(|e| SignatureError::MalformedSignature(e.to_string()))?;
        let member = members.iter().find(|m| m.key == label).ok_or_else(|| {
            SignatureError::MalformedSignature(format!("no signature labelled {label}"))
        })?;
        match &member.value {
            MemberValue::Item(BareItem::Bytes(b)) => (b.clone(), false),
            _ => {
                return Err(SignatureError::MalformedSignature(format!(
                    "{label} is not a byte sequence (:base64:)"
                )))
            }
        }
    } else {
        let bytes = sf::decode_base64(signature).ok_or_else(|| {
            SignatureError::MalformedSignature("not base64 nor label=:base64:".into())
        })?;
        (bytes, true)
    };
    let len = bytes.len();
    let array: [u8; SIGNATURE_LENGTH] = bytes.try_into().map_err(|_| {
        SignatureError::MalformedSignature(format!(
            "an ed25519 signature is {SIGNATURE_LENGTH} bytes, got {len}"
        ))
    })?;
    Ok((array, bare))
}

/// The two headers that carry a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `Signature-Input`, e.g. `sig1=("@method" "@target-uri");keyid="k";created=123`.
    pub signature_input: String,
    /// `Signature`, e.g. `sig1=:BASE64:`.
    pub signature: String,
}

/// Signs a request (strict RFC 9421 form, label `sig1`, parameters `keyid` then `created`, as
/// the Node client writes them).
///
/// `components` must be lower-case header names or supported derived components
/// (`@method`, `@target-uri`, `@authority`, `@scheme`, `@request-target`, `@path`, `@query`);
/// every covered header must be present in `parts`. Use [`components_for`] for the set the
/// official clients sign. The `Content-Digest` header, when covered, must already be in
/// `parts` (see [`crate::digest::content_digest_sha256`]).
pub fn sign_request(
    parts: &RequestParts<'_>,
    components: &[&str],
    keyid: &str,
    created: i64,
    key: &SigningKey,
) -> Result<SignatureHeaders, SignatureError> {
    let mut names: Vec<String> = Vec::with_capacity(components.len());
    for c in components {
        check_component_name(c).map_err(|e| match e {
            SignatureError::MalformedSignatureInput(m) => SignatureError::InvalidParameter(m),
            other => other,
        })?;
        if names.iter().any(|n| n == c) {
            return Err(SignatureError::InvalidParameter(format!(
                "component {c} is listed twice"
            )));
        }
        names.push((*c).to_string());
    }
    let mut params = String::from("(");
    params.push_str(
        &names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(" "),
    );
    params.push_str(");keyid=");
    params.push_str(&serialize_sf_string(keyid)?);
    params.push_str(";created=");
    params.push_str(&created.to_string());

    let base = build_signature_base(parts, &names, &params)?;
    // RFC 9421 §3.3.6: "To sign using this algorithm, the signer applies the Ed25519 algorithm
    // defined in Section 5.1.6 of [RFC8032] with the signer's private signing key and the
    // signature base (Section 2.5). The signature base is taken as the input message (M) with
    // no prehash function."
    let signature = key.sign(base.as_bytes());
    Ok(SignatureHeaders {
        signature_input: format!("{DEFAULT_LABEL}={params}"),
        signature: format!(
            "{DEFAULT_LABEL}=:{}:",
            STANDARD.encode(signature.to_bytes())
        ),
    })
}

/// Serialises an RFC 8941 sf-string (§4.1.6): printable ASCII, `"` and `\` escaped.
fn serialize_sf_string(value: &str) -> Result<String, SignatureError> {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                return Err(SignatureError::InvalidParameter(format!(
                    "{value:?} holds a character outside printable ASCII"
                )))
            }
        }
    }
    out.push('"');
    Ok(out)
}

/// The components the official Node client (`@interledger/http-signature-utils`
/// `createSignatureHeaders`) covers: `@method`, `@target-uri`, `authorization` when present,
/// and with a body `content-digest`, `content-length`, `content-type`.
pub fn components_for(has_body: bool, has_authorization: bool) -> Vec<&'static str> {
    let mut components = vec!["@method", "@target-uri"];
    if has_authorization {
        components.push("authorization");
    }
    if has_body {
        components.extend(["content-digest", "content-length", "content-type"]);
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn header_values_are_trimmed_unfolded_and_joined() {
        let h = headers(&[
            ("cache-control", "  max-age=60 "),
            ("Cache-Control", "must-revalidate"),
            ("x-folded", "a\r\n   b"),
        ]);
        let parts = RequestParts {
            method: "GET",
            target_uri: "https://example.com/",
            headers: &h,
        };
        assert_eq!(
            parts.header("cache-control").as_deref(),
            Some("max-age=60, must-revalidate")
        );
        assert_eq!(parts.header("x-folded").as_deref(), Some("a b"));
        assert_eq!(parts.header("absent"), None);
    }

    #[test]
    fn derived_components() {
        let h = headers(&[]);
        let parts = RequestParts {
            method: "post",
            target_uri: "HTTPS://User@Example.COM:443/a/b?x=1&y=%20#frag",
            headers: &h,
        };
        let v = |n: &str| component_value(&parts, n).unwrap();
        assert_eq!(v("@method"), "POST");
        assert_eq!(v("@target-uri"), parts.target_uri);
        assert_eq!(v("@authority"), "example.com");
        assert_eq!(v("@scheme"), "https");
        assert_eq!(v("@path"), "/a/b");
        assert_eq!(v("@query"), "?x=1&y=%20");
        assert_eq!(v("@request-target"), "/a/b?x=1&y=%20");

        let parts = RequestParts {
            method: "GET",
            target_uri: "http://example.com:8080",
            headers: &h,
        };
        let v = |n: &str| component_value(&parts, n).unwrap();
        assert_eq!(v("@authority"), "example.com:8080");
        assert_eq!(v("@path"), "/");
        assert_eq!(v("@query"), "?");
        assert_eq!(v("@request-target"), "/");
        assert!(matches!(
            component_value(&parts, "@status"),
            Err(SignatureError::UnsupportedComponent(_))
        ));
        assert_eq!(
            component_value(&parts, "authorization"),
            Err(SignatureError::ComponentHeaderAbsent(
                "authorization".into()
            ))
        );
    }

    #[test]
    fn non_ascii_and_line_breaks_are_refused() {
        let h = headers(&[("x-a", "caf\u{e9}"), ("x-b", "a\nb")]);
        let parts = RequestParts {
            method: "GET",
            target_uri: "https://example.com/",
            headers: &h,
        };
        assert_eq!(
            component_value(&parts, "x-a"),
            Err(SignatureError::InvalidComponentValue("x-a".into()))
        );
        assert_eq!(
            component_value(&parts, "x-b"),
            Err(SignatureError::InvalidComponentValue("x-b".into()))
        );
    }

    #[test]
    fn components_for_matches_node_client() {
        assert_eq!(components_for(false, false), ["@method", "@target-uri"]);
        assert_eq!(
            components_for(false, true),
            ["@method", "@target-uri", "authorization"]
        );
        assert_eq!(
            components_for(true, true),
            [
                "@method",
                "@target-uri",
                "authorization",
                "content-digest",
                "content-length",
                "content-type"
            ]
        );
    }

    #[test]
    fn sf_string_serialisation() {
        assert_eq!(serialize_sf_string(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert!(serialize_sf_string("k\u{e9}").is_err());
        assert!(serialize_sf_string("a\nb").is_err());
    }
}
