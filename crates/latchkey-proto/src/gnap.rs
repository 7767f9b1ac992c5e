//! GNAP (RFC 9635) as profiled by Open Payments: request and response bodies of the grant,
//! continuation, token management and token introspection endpoints.
//!
//! The shapes follow `auth-server.yaml` and `token-introspection.yaml` of the Open Payments
//! specifications. Response types deny nothing on input but never emit a field the specs do not
//! name, because the official clients validate responses strictly.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::keys::Jwk;

/// An action a grant may allow on a resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Create a resource.
    Create,
    /// Complete an incoming payment.
    Complete,
    /// Read resources created by this client.
    Read,
    /// Read every resource of the wallet address.
    ReadAll,
    /// List resources created by this client.
    List,
    /// List every resource of the wallet address.
    ListAll,
}

impl Action {
    /// The wire name of the action.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Complete => "complete",
            Action::Read => "read",
            Action::ReadAll => "read-all",
            Action::List => "list",
            Action::ListAll => "list-all",
        }
    }
}

/// An amount of an asset: `{"value": "500", "assetCode": "USD", "assetScale": 2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Amount {
    /// Unsigned 64-bit integer, as a string.
    pub value: String,
    /// Asset code, such as `USD`.
    pub asset_code: String,
    /// Number of decimal places.
    pub asset_scale: u8,
}

impl Amount {
    /// The amount in major units as text, e.g. `"5.00"` for value 500 and scale 2.
    pub fn to_major_units(&self) -> String {
        let scale = usize::from(self.asset_scale);
        let digits = self.value.trim_start_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        if scale == 0 {
            return digits.to_string();
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{int}.{frac}")
    }
}

/// Limits of an outgoing-payment grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutgoingLimits {
    /// The incoming payment URL the payments must go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// ISO 8601 repeating interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Maximum amount debited per interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debit_amount: Option<Amount>,
    /// Maximum amount received per interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_amount: Option<Amount>,
}

/// One access item: a resource type, the allowed actions and, where given, the wallet address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AccessItem {
    /// `incoming-payment` access.
    IncomingPayment(IncomingPaymentAccess),
    /// `outgoing-payment` access.
    OutgoingPayment(OutgoingPaymentAccess),
    /// `quote` access.
    Quote(QuoteAccess),
}

/// Body of an `incoming-payment` access item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingPaymentAccess {
    /// Allowed actions.
    pub actions: Vec<Action>,
    /// Wallet address the access applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
}

/// Body of an `outgoing-payment` access item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutgoingPaymentAccess {
    /// Allowed actions.
    pub actions: Vec<Action>,
    /// Wallet address the payments are sent from (required by the spec).
    pub identifier: String,
    /// Spending limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<OutgoingLimits>,
}

/// Body of a `quote` access item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteAccess {
    /// Allowed actions.
    pub actions: Vec<Action>,
    /// Wallet address the access applies to (not in the spec's quote schema, accepted for leniency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
}

impl AccessItem {
    /// The wire name of the resource type.
    pub fn type_name(&self) -> &'static str {
        match self {
            AccessItem::IncomingPayment(_) => "incoming-payment",
            AccessItem::OutgoingPayment(_) => "outgoing-payment",
            AccessItem::Quote(_) => "quote",
        }
    }

    /// Allowed actions.
    pub fn actions(&self) -> &[Action] {
        match self {
            AccessItem::IncomingPayment(a) => &a.actions,
            AccessItem::OutgoingPayment(a) => &a.actions,
            AccessItem::Quote(a) => &a.actions,
        }
    }

    /// The wallet address the item names, if any.
    pub fn identifier(&self) -> Option<&str> {
        match self {
            AccessItem::IncomingPayment(a) => a.identifier.as_deref(),
            AccessItem::OutgoingPayment(a) => Some(a.identifier.as_str()),
            AccessItem::Quote(a) => a.identifier.as_deref(),
        }
    }

    /// Checks the item against the spec's per-type rules: a non-empty set of unique actions,
    /// each allowed for the type, and well-formed limits.
    pub fn validate(&self) -> Result<(), String> {
        let allowed: &[Action] = match self {
            AccessItem::IncomingPayment(_) => &[
                Action::Create,
                Action::Complete,
                Action::Read,
                Action::ReadAll,
                Action::List,
                Action::ListAll,
            ],
            AccessItem::OutgoingPayment(_) => &[
                Action::Create,
                Action::Read,
                Action::ReadAll,
                Action::List,
                Action::ListAll,
            ],
            AccessItem::Quote(_) => &[Action::Create, Action::Read, Action::ReadAll],
        };
        let actions = self.actions();
        if actions.is_empty() {
            return Err(format!(
                "{} access needs at least one action",
                self.type_name()
            ));
        }
        for (i, action) in actions.iter().enumerate() {
            if !allowed.contains(action) {
                return Err(format!(
                    "action `{}` is not allowed for {} access",
                    action.as_str(),
                    self.type_name()
                ));
            }
            if actions[..i].contains(action) {
                return Err(format!("action `{}` is repeated", action.as_str()));
            }
        }
        if let Some(identifier) = self.identifier() {
            check_url(identifier).map_err(|e| format!("identifier: {e}"))?;
        }
        if let AccessItem::OutgoingPayment(OutgoingPaymentAccess {
            limits: Some(limits),
            ..
        }) = self
        {
            if limits.debit_amount.is_some() && limits.receive_amount.is_some() {
                return Err("limits may name debitAmount or receiveAmount, not both".into());
            }
            for amount in [&limits.debit_amount, &limits.receive_amount]
                .into_iter()
                .flatten()
            {
                if amount.value.is_empty() || amount.value.parse::<u64>().is_err() {
                    return Err(format!(
                        "amount value `{}` is not an unsigned 64-bit integer",
                        amount.value
                    ));
                }
            }
            if let Some(receiver) = &limits.receiver {
                check_url(receiver).map_err(|e| format!("receiver: {e}"))?;
                if !receiver.contains("/incoming-payments/") {
                    return Err("receiver must be an incoming payment URL".into());
                }
            }
        }
        Ok(())
    }

    /// True when every action of `requested` (same type, same identifier if it names one) is
    /// granted by `self`. Used by introspection to select the matching access items.
    pub fn covers(&self, requested: &AccessItem) -> bool {
        if self.type_name() != requested.type_name() {
            return false;
        }
        if let Some(wanted) = requested.identifier() {
            if self.identifier().is_some_and(|own| own != wanted) {
                return false;
            }
        }
        requested
            .actions()
            .iter()
            .all(|action| self.actions().contains(action))
    }
}

fn check_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    match url.scheme() {
        "http" | "https" => Ok(()),
        other => Err(format!("`{text}` has scheme `{other}`, expected https")),
    }
}

/// The `client` of a grant request: a wallet address URL (the form Open Payments 1.1 specifies),
/// `{"walletAddress": url}`, or `{"jwk": {...}}` (directed identity, non-interactive grants only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClientRef {
    /// `"client": "https://wallet.example/alice"`.
    Url(String),
    /// `"client": {"walletAddress": "https://wallet.example/alice"}`.
    WalletAddress {
        /// The wallet address whose `/jwks.json` holds the client's keys.
        #[serde(rename = "walletAddress")]
        wallet_address: String,
    },
    /// `"client": {"jwk": {...}}`.
    Jwk {
        /// The client's public key.
        jwk: Jwk,
    },
}

impl ClientRef {
    /// The wallet address of the client, unless it identified itself by a bare key.
    pub fn wallet_address(&self) -> Option<&str> {
        match self {
            ClientRef::Url(url) => Some(url),
            ClientRef::WalletAddress { wallet_address } => Some(wallet_address),
            ClientRef::Jwk { .. } => None,
        }
    }
}

/// `access_token` of a grant request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenRequest {
    /// The access the client asks for.
    pub access: Vec<AccessItem>,
}

/// How the client wants to hear that the interaction finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractFinish {
    /// Only `redirect` is supported by Open Payments.
    pub method: String,
    /// Where the user's browser is sent when the interaction ends.
    pub uri: String,
    /// Client nonce, an input of the interaction hash.
    pub nonce: String,
}

/// `interact` of a grant request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractRequest {
    /// Start modes; Open Payments knows `redirect`.
    pub start: Vec<String>,
    /// Finish method, if the client can receive a redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish: Option<InteractFinish>,
}

/// `POST /` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantRequest {
    /// The access token the client asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<AccessTokenRequest>,
    /// Who the client is.
    pub client: ClientRef,
    /// How the client can interact with the resource owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interact: Option<InteractRequest>,
    /// Subject information request (accepted, not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<serde_json::Value>,
}

/// An access token as the grant, continuation and rotation responses carry it. The spec sets
/// `additionalProperties: false`: nothing else may be added here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessToken {
    /// The token value, to be sent as `Authorization: GNAP <value>`.
    pub value: String,
    /// The token's management URL (rotate with `POST`, revoke with `DELETE`).
    pub manage: String,
    /// Seconds until the token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// The access the token carries.
    pub access: Vec<AccessItem>,
}

/// The continuation access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueToken {
    /// The token value.
    pub value: String,
}

/// `continue` of a grant response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continue {
    /// Token for continuation calls.
    pub access_token: ContinueToken,
    /// The continuation URI (`POST` to continue, `DELETE` to cancel).
    pub uri: String,
    /// Seconds the client should wait before polling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u64>,
}

/// `interact` of a grant response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractResponse {
    /// Where the client sends the user.
    pub redirect: String,
    /// Server nonce, an input of the interaction hash.
    pub finish: String,
}

/// `POST /` and `POST /continue/{id}` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantResponse {
    /// The issued access token, when the grant is approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<AccessToken>,
    /// Interaction instructions, when the grant needs the resource owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interact: Option<InteractResponse>,
    /// How to continue or cancel the grant.
    #[serde(rename = "continue")]
    pub continue_: Continue,
}

/// `POST /continue/{id}` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContinueRequest {
    /// The interaction reference from the finish redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interact_ref: Option<String>,
}

/// `POST /token/{id}` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateResponse {
    /// The successor token.
    pub access_token: AccessToken,
}

/// Introspection request (`token-introspection.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntrospectRequest {
    /// The token value presented to the resource server.
    pub access_token: String,
    /// The access the resource server needs; only matching items are returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Vec<AccessItem>>,
}

/// Client of an introspected token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntrospectClient {
    /// `{"walletAddress": url}`.
    WalletAddress {
        /// The client's wallet address.
        #[serde(rename = "walletAddress")]
        wallet_address: String,
    },
    /// `{"jwk": {...}}`.
    Jwk {
        /// The client's key.
        jwk: Jwk,
    },
}

/// Introspection response: `{"active": false}` or the token's grant, access and client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectResponse {
    /// Whether the token may be used.
    pub active: bool,
    /// The grant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// The (matching) access items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Vec<AccessItem>>,
    /// Who holds the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IntrospectClient>,
}

impl IntrospectResponse {
    /// `{"active": false}`.
    pub fn inactive() -> Self {
        IntrospectResponse {
            active: false,
            grant: None,
            access: None,
            client: None,
        }
    }
}

/// The error codes Open Payments uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is missing a parameter, has an invalid one, or is otherwise malformed.
    InvalidRequest,
    /// The client is unknown, or its signature or key is wrong.
    InvalidClient,
    /// The interaction is expired or not in the right state.
    InvalidInteraction,
    /// No interaction has this id and nonce.
    UnknownInteraction,
    /// The token cannot be rotated.
    InvalidRotation,
    /// The continuation is unknown or not allowed now.
    InvalidContinuation,
    /// The request was denied.
    RequestDenied,
    /// The resource owner denied the request.
    UserDenied,
    /// The client polled before `wait` elapsed.
    TooFast,
    /// The server cannot serve now (storage unavailable). Not an Open Payments code.
    ServiceUnavailable,
}

impl ErrorCode {
    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidInteraction => "invalid_interaction",
            ErrorCode::UnknownInteraction => "unknown_interaction",
            ErrorCode::InvalidRotation => "invalid_rotation",
            ErrorCode::InvalidContinuation => "invalid_continuation",
            ErrorCode::RequestDenied => "request_denied",
            ErrorCode::UserDenied => "user_denied",
            ErrorCode::TooFast => "too_fast",
            ErrorCode::ServiceUnavailable => "service_unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"code", "description"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub description: String,
}

/// Error body: `{"error": {"code", "description"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

impl ErrorBody {
    /// Builds an error body.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code,
                description: description.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_examples_and_renders_them_back() {
        let body = r#"{"access_token":{"access":[{"type":"outgoing-payment","actions":["create","read"],
            "identifier":"https://ilp.example/alice","limits":{"receiver":"https://ilp.example/incoming-payments/45a0",
            "interval":"R12/2019-08-24T14:15:22Z/P1M","debitAmount":{"value":"500","assetCode":"USD","assetScale":2}}}]},
            "client":"https://webmonize.com/.well-known/pay",
            "interact":{"start":["redirect"],"finish":{"method":"redirect","uri":"https://webmonize.com/return/876FGRD8VC","nonce":"4edb"}}}"#;
        let req: GrantRequest = serde_json::from_str(body).expect("parses");
        assert_eq!(
            req.client.wallet_address(),
            Some("https://webmonize.com/.well-known/pay")
        );
        let item = &req.access_token.as_ref().expect("access").access[0];
        assert_eq!(item.type_name(), "outgoing-payment");
        item.validate().expect("valid");
        let back = serde_json::to_value(item).expect("serialises");
        assert_eq!(back["limits"]["debitAmount"]["assetScale"], 2);
        assert_eq!(back["type"], "outgoing-payment");
    }

    #[test]
    fn client_object_forms_parse() {
        let c: ClientRef =
            serde_json::from_str(r#"{"walletAddress":"https://w.example/a"}"#).expect("parses");
        assert_eq!(c.wallet_address(), Some("https://w.example/a"));
        let c: ClientRef = serde_json::from_str(
            r#"{"jwk":{"kid":"k","kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","alg":"EdDSA"}}"#,
        )
        .expect("parses");
        assert!(c.wallet_address().is_none());
    }

    #[test]
    fn unknown_types_actions_and_fields_are_refused() {
        assert!(serde_json::from_str::<AccessItem>(
            r#"{"type":"wire-transfer","actions":["read"]}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<AccessItem>(r#"{"type":"quote","actions":["fly"]}"#).is_err()
        );
        assert!(serde_json::from_str::<AccessItem>(
            r#"{"type":"quote","actions":["read"],"extra":1}"#
        )
        .is_err());
        let quote_list: AccessItem =
            serde_json::from_str(r#"{"type":"quote","actions":["list"]}"#).expect("parses");
        assert!(quote_list.validate().is_err());
        let repeated: AccessItem =
            serde_json::from_str(r#"{"type":"quote","actions":["read","read"]}"#).expect("parses");
        assert!(repeated.validate().is_err());
        let empty: AccessItem =
            serde_json::from_str(r#"{"type":"incoming-payment","actions":[]}"#).expect("parses");
        assert!(empty.validate().is_err());
    }

    #[test]
    fn covers_selects_by_type_identifier_and_actions() {
        let granted: AccessItem = serde_json::from_str(
            r#"{"type":"incoming-payment","actions":["create","read"],"identifier":"https://w.example/a"}"#,
        )
        .expect("parses");
        let want: AccessItem =
            serde_json::from_str(r#"{"type":"incoming-payment","actions":["read"]}"#)
                .expect("parses");
        assert!(granted.covers(&want));
        let other_wallet: AccessItem = serde_json::from_str(
            r#"{"type":"incoming-payment","actions":["read"],"identifier":"https://w.example/b"}"#,
        )
        .expect("parses");
        assert!(!granted.covers(&other_wallet));
        let more: AccessItem =
            serde_json::from_str(r#"{"type":"incoming-payment","actions":["list"]}"#)
                .expect("parses");
        assert!(!granted.covers(&more));
    }

    #[test]
    fn amounts_render_in_major_units() {
        let a = |v: &str, s: u8| Amount {
            value: v.into(),
            asset_code: "USD".into(),
            asset_scale: s,
        };
        assert_eq!(a("500", 2).to_major_units(), "5.00");
        assert_eq!(a("5", 2).to_major_units(), "0.05");
        assert_eq!(a("0", 2).to_major_units(), "0.00");
        assert_eq!(a("1234", 0).to_major_units(), "1234");
    }

    #[test]
    fn access_token_refuses_extra_fields() {
        let extra =
            r#"{"value":"v","manage":"https://a/token/1","access":[],"expires_in":600,"foo":1}"#;
        assert!(serde_json::from_str::<AccessToken>(extra).is_err());
    }
}
