//! Managing OAuth clients: the operations behind `latchkey oauth-client ...` and the admin API.

use latchkey_proto::oauth::{ClientCredentials, ClientInfo, DisableClientResponse};

use super::client::{validate_name, OAuthClient};
use super::error::OAuthFailure;
use super::scope;
use crate::domain::clock::now_ms;
use crate::store::SharedOAuthStore;
use crate::token_format::TokenValue;

/// Client management over an [`crate::store::OAuthStore`].
#[derive(Clone)]
pub struct ClientAdmin {
    store: SharedOAuthStore,
}

impl ClientAdmin {
    /// Management over `store`.
    pub fn new(store: SharedOAuthStore) -> Self {
        ClientAdmin { store }
    }

    /// Registers a client; the returned secret is shown once and stored only as its SHA-256.
    pub async fn create(
        &self,
        name: &str,
        scopes: &[String],
    ) -> Result<ClientCredentials, OAuthFailure> {
        let name = validate_name(name).map_err(OAuthFailure::InvalidRequest)?;
        let scopes =
            scope::normalize(scopes).map_err(|e| OAuthFailure::InvalidRequest(e.to_string()))?;
        let (client, secret) = OAuthClient::generate(name, scopes, now_ms());
        self.store.insert_client(&client).await?;
        tracing::info!(client_id = %client.id, "oauth client created");
        Ok(ClientCredentials {
            client_id: client.id,
            client_secret: secret.expose().to_string(),
        })
    }

    /// Every client, oldest first.
    pub async fn list(&self) -> Result<Vec<ClientInfo>, OAuthFailure> {
        Ok(self
            .store
            .list_clients()
            .await?
            .iter()
            .map(OAuthClient::info)
            .collect())
    }

    /// One client.
    pub async fn get(&self, id: &str) -> Result<ClientInfo, OAuthFailure> {
        self.store
            .client_by_id(id)
            .await?
            .map(|c| c.info())
            .ok_or_else(|| OAuthFailure::UnknownClient(id.to_string()))
    }

    /// Disables the client and revokes all its tokens in one transaction. Idempotent.
    pub async fn disable(&self, id: &str) -> Result<DisableClientResponse, OAuthFailure> {
        let revoked = self
            .store
            .disable_client(id, now_ms())
            .await?
            .ok_or_else(|| OAuthFailure::UnknownClient(id.to_string()))?;
        tracing::info!(client_id = %id, revoked_tokens = revoked, "oauth client disabled");
        Ok(DisableClientResponse {
            client: self.get(id).await?,
            revoked_tokens: revoked,
        })
    }

    /// Enables a disabled client; its revoked tokens stay revoked.
    pub async fn enable(&self, id: &str) -> Result<ClientInfo, OAuthFailure> {
        if !self.store.enable_client(id).await? {
            return Err(OAuthFailure::UnknownClient(id.to_string()));
        }
        tracing::info!(client_id = %id, "oauth client enabled");
        self.get(id).await
    }

    /// Replaces the secret (the old one stops working at once); with `revoke_tokens`, also
    /// revokes every token of the client in the same transaction.
    pub async fn rotate_secret(
        &self,
        id: &str,
        revoke_tokens: bool,
    ) -> Result<ClientCredentials, OAuthFailure> {
        let secret = TokenValue::generate();
        let revoked = self
            .store
            .set_client_secret(id, &secret.secret_hash(), now_ms(), revoke_tokens)
            .await?
            .ok_or_else(|| OAuthFailure::UnknownClient(id.to_string()))?;
        tracing::info!(client_id = %id, revoked_tokens = revoked, "oauth client secret rotated");
        Ok(ClientCredentials {
            client_id: id.to_string(),
            client_secret: secret.expose().to_string(),
        })
    }

    /// Deletes the client and all its tokens.
    pub async fn delete(&self, id: &str) -> Result<(), OAuthFailure> {
        if !self.store.delete_client(id).await? {
            return Err(OAuthFailure::UnknownClient(id.to_string()));
        }
        tracing::info!(client_id = %id, "oauth client deleted");
        Ok(())
    }
}
