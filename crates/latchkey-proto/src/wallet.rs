//! The Open Payments wallet address document (`wallet-address-server.yaml`).

use serde::{Deserialize, Serialize};

/// `GET {wallet address}` with `Accept: application/json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletAddress {
    /// The URL identifying the wallet address.
    pub id: String,
    /// A public name for the account, shown to users on consent pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_name: Option<String>,
    /// ISO 4217 currency code (or another asset code) of the account.
    pub asset_code: String,
    /// Number of decimal places of `asset_code` amounts.
    pub asset_scale: u8,
    /// The grant endpoint of the authorization server guarding this wallet address.
    pub auth_server: String,
    /// The resource server serving this wallet address' payments.
    pub resource_server: String,
}
