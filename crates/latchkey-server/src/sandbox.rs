//! The sandbox: play wallet addresses with keys, so a client developer can run every flow on one
//! machine. Private keys are written (PKCS#8 PEM, mode 0600) to `{data dir}/keys/`.

use ed25519_dalek::SigningKey;
use latchkey_proto::keys::{
    generate_signing_key, load_signing_key, signing_key_to_pkcs8_pem, Jwk, JwkSet,
};
use latchkey_proto::wallet::WalletAddress;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The play wallets every sandbox has.
pub const PLAY_WALLETS: &[(&str, &str)] = &[("alice", "Alice (sandbox)"), ("bob", "Bob (sandbox)")];

/// Why the sandbox could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Reading or writing the key files failed.
    #[error("sandbox key file {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A key file holds no usable key.
    #[error("sandbox key file {0} is not an Ed25519 PKCS#8 PEM key: {1}")]
    BadKey(PathBuf, String),
}

/// One play wallet address.
#[derive(Debug)]
pub struct PlayWallet {
    /// Path segment: `{public_url}/wallet/{name}`.
    pub name: String,
    /// `publicName` of the wallet address document.
    pub public_name: String,
    /// The client key of this wallet.
    pub key: SigningKey,
    /// Its key id.
    pub key_id: String,
    /// Where its private key is written.
    pub key_path: PathBuf,
}

/// The sandbox wallets.
#[derive(Debug)]
pub struct Sandbox {
    /// Public base URL (no trailing slash).
    pub public_url: String,
    /// The wallets.
    pub wallets: Vec<PlayWallet>,
}

fn key_id(name: &str, key: &SigningKey) -> String {
    let digest = Sha256::digest(key.verifying_key().as_bytes());
    format!("{name}-{}", hex::encode(&digest[..4]))
}

impl Sandbox {
    /// Loads the wallets' keys from `data_dir/keys/`, creating missing ones.
    pub fn load_or_create(data_dir: &Path, public_url: &str) -> Result<Sandbox, SandboxError> {
        let dir = data_dir.join("keys");
        std::fs::create_dir_all(&dir).map_err(|e| SandboxError::Io(dir.clone(), e))?;
        let mut wallets = Vec::new();
        for (name, public_name) in PLAY_WALLETS {
            let path = dir.join(format!("{name}.pem"));
            let key = if path.exists() {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| SandboxError::Io(path.clone(), e))?;
                load_signing_key(&text)
                    .map_err(|e| SandboxError::BadKey(path.clone(), e.to_string()))?
            } else {
                let key = generate_signing_key();
                write_private(&path, &signing_key_to_pkcs8_pem(&key))?;
                key
            };
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            wallets.push(PlayWallet {
                name: (*name).to_string(),
                public_name: (*public_name).to_string(),
                key_id: key_id(name, &key),
                key,
                key_path: path,
            });
        }
        Ok(Sandbox {
            public_url: public_url.trim_end_matches('/').to_string(),
            wallets,
        })
    }

    /// The wallet named `name`.
    pub fn wallet(&self, name: &str) -> Option<&PlayWallet> {
        self.wallets.iter().find(|w| w.name == name)
    }

    /// `{public_url}/wallet/{name}`.
    pub fn wallet_url(&self, name: &str) -> String {
        format!("{}/wallet/{name}", self.public_url)
    }

    /// The wallet address document.
    pub fn document(&self, name: &str) -> Option<WalletAddress> {
        let wallet = self.wallet(name)?;
        Some(WalletAddress {
            id: self.wallet_url(name),
            public_name: Some(wallet.public_name.clone()),
            asset_code: "USD".into(),
            asset_scale: 2,
            auth_server: format!("{}/", self.public_url),
            resource_server: format!("{}/resources", self.public_url),
        })
    }

    /// The wallet's key set.
    pub fn jwks(&self, name: &str) -> Option<JwkSet> {
        let wallet = self.wallet(name)?;
        let mut jwk = Jwk::from_verifying_key(&wallet.key_id, &wallet.key.verifying_key());
        jwk.alg = Some("EdDSA".into());
        Some(JwkSet { keys: vec![jwk] })
    }

    /// The `KEY=VALUE` lines a client needs (the seeds' variable names), for the first wallet,
    /// then the others with their name as prefix.
    pub fn client_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (i, w) in self.wallets.iter().enumerate() {
            let prefix = if i == 0 {
                String::new()
            } else {
                format!("{}_", w.name.to_uppercase())
            };
            lines.push(format!(
                "{prefix}WALLET_ADDRESS_URL={}",
                self.wallet_url(&w.name)
            ));
            lines.push(format!("{prefix}KEY_ID={}", w.key_id));
            lines.push(format!("{prefix}PRIVATE_KEY={}", w.key_path.display()));
        }
        lines
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), SandboxError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| SandboxError::Io(path.to_path_buf(), e))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| SandboxError::Io(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Sandbox::load_or_create(dir.path(), "http://127.0.0.1:1/").expect("create");
        let second = Sandbox::load_or_create(dir.path(), "http://127.0.0.1:1").expect("reload");
        assert_eq!(first.wallets[0].key_id, second.wallets[0].key_id);
        let doc = first.document("alice").expect("alice");
        assert_eq!(doc.auth_server, "http://127.0.0.1:1/");
        assert_eq!(doc.id, "http://127.0.0.1:1/wallet/alice");
        let jwks = first.jwks("alice").expect("jwks");
        assert_eq!(jwks.keys[0].kid, first.wallets[0].key_id);
        assert!(first.document("mallory").is_none());
        let lines = first.client_lines();
        assert!(lines
            .iter()
            .any(|l| l.starts_with("WALLET_ADDRESS_URL=http://127.0.0.1:1/wallet/alice")));
        assert!(lines.iter().any(|l| l.starts_with("BOB_KEY_ID=bob-")));
    }
}
