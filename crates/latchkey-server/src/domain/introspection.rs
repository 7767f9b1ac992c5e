//! The introspection answer for resource servers (`token-introspection.yaml`), and the record
//! of a token and its grant that it is made from.

use latchkey_proto::gnap::{AccessItem, IntrospectClient};
use serde::Serialize;
use serde_json::value::RawValue;

use super::grant::{ClientKeySource, GrantState};
use super::token::AccessTokenRecord;
use crate::store::StoreError;

/// What introspection needs of a token and its grant, read together by one lookup.
///
/// The grant's access list stays the JSON text the store keeps. The store wrote it with the
/// serializer the answer would use (`serde_json` on `Vec<AccessItem>`), so an introspection
/// without an `access` filter serves it as it is instead of parsing and re-serializing it
/// (BENCHMARKS.md, round 15: that round trip was a tenth of an introspection's instructions).
#[derive(Debug, Clone)]
pub struct IntrospectionRecord {
    /// The token.
    pub token: AccessTokenRecord,
    /// Its grant's id, reported as `grant`.
    pub grant_id: String,
    /// Its grant's state: a cancelled grant kills the token.
    pub grant_state: GrantState,
    /// Its grant's client, reported as `client`.
    pub client: ClientKeySource,
    /// Its grant's access list, as stored (checked to be JSON when read).
    pub access_json: Box<RawValue>,
}

impl IntrospectionRecord {
    /// The grant's access list, parsed (for an introspection that names the access it needs).
    /// A stored list that is JSON but not an access list is corrupt.
    pub fn parsed_access(&self) -> Result<Vec<AccessItem>, StoreError> {
        serde_json::from_str(self.access_json.get())
            .map_err(|e| StoreError::Corrupt(format!("access list: {e}")))
    }
}

/// The access list of an active answer.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum AnsweredAccess {
    /// The grant's whole list, as stored.
    AsStored(Box<RawValue>),
    /// The items that cover what the resource server asked for.
    Covering(Vec<AccessItem>),
}

/// An introspection answer: `{"active": false}`, or the token's grant, access and client. It
/// serializes as `latchkey_proto::gnap::IntrospectResponse` does, field for field.
#[derive(Debug, Clone, Serialize)]
pub struct IntrospectAnswer {
    /// Whether the token may be used.
    pub active: bool,
    /// The grant id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
    /// The (matching) access items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<AnsweredAccess>,
    /// Who holds the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<IntrospectClient>,
}

impl IntrospectAnswer {
    /// `{"active": false}`.
    pub fn inactive() -> Self {
        IntrospectAnswer {
            active: false,
            grant: None,
            access: None,
            client: None,
        }
    }

    /// The active answer for a token of grant `grant_id`, held by `client`, giving `access`.
    pub fn active(grant_id: String, access: AnsweredAccess, client: ClientKeySource) -> Self {
        IntrospectAnswer {
            active: true,
            grant: Some(grant_id),
            access: Some(access),
            client: Some(client.into_introspect_client()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_proto::gnap::IntrospectResponse;

    fn access_list() -> Vec<AccessItem> {
        serde_json::from_value(serde_json::json!([
            {"type": "incoming-payment", "actions": ["create", "read", "list", "complete"]},
            {"type": "outgoing-payment", "actions": ["create", "read"],
             "identifier": "https://wallet.example/alice",
             "limits": {"receiver": "https://wallet.example/bob/incoming-payments/1",
                        "debitAmount": {"value": "500", "assetCode": "USD", "assetScale": 2},
                        "interval": "R/2026-01-01T00:00:00Z/P1M"}},
            {"type": "quote", "actions": ["create", "read"]}
        ]))
        .expect("a valid access list")
    }

    #[test]
    fn an_answer_with_the_stored_list_is_byte_for_byte_the_parsed_one() {
        let items = access_list();
        // What the stores write (`GrantColumns::of`).
        let stored = serde_json::to_string(&items).expect("serializes");
        let wallet = "https://wallet.example/alice".to_string();
        let served = IntrospectAnswer::active(
            "grant-1".into(),
            AnsweredAccess::AsStored(RawValue::from_string(stored).expect("JSON")),
            ClientKeySource::WalletAddress(wallet.clone()),
        );
        let parsed = IntrospectResponse {
            active: true,
            grant: Some("grant-1".into()),
            access: Some(items),
            client: Some(ClientKeySource::WalletAddress(wallet).into_introspect_client()),
        };
        assert_eq!(
            serde_json::to_string(&served).expect("serializes"),
            serde_json::to_string(&parsed).expect("serializes")
        );
    }

    #[test]
    fn an_inactive_answer_says_only_so() {
        assert_eq!(
            serde_json::to_value(IntrospectAnswer::inactive()).expect("serializes"),
            serde_json::json!({"active": false})
        );
    }
}
