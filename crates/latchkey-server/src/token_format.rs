//! The token *format*: how token values and public ids are generated and turned into the
//! lookup key that storage sees. Storage never sees a token value (DESIGN.md, after Ory fosite).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// Bytes of entropy in a token value: 256 bits from the OS CSPRNG.
pub const TOKEN_BYTES: usize = 32;
/// Bytes of entropy in a public id (manage URL, continue URL, interaction): 128 bits.
pub const ID_BYTES: usize = 16;

/// A freshly generated secret token value. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenValue(String);

impl TokenValue {
    /// Generates a new opaque, URL-safe value with [`TOKEN_BYTES`] of entropy.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng.fill_bytes(&mut bytes);
        TokenValue(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A value the client presented (for example a session cookie being re-sent).
    pub fn from_presented(value: &str) -> Self {
        TokenValue(value.to_string())
    }

    /// The value to hand to the client, once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The lookup key storage keeps.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for TokenValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenValue(<redacted>)")
    }
}

/// SHA-256 of a token value: the only form in which tokens and secrets are stored.
///
/// A fast hash is enough because every value carries 256 bits of server-generated entropy
/// (DESIGN.md: "Server-generated client secrets carry full entropy, so a fast hash suffices").
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a presented value (from a header or a body).
    pub fn of(presented: &str) -> Self {
        TokenHash(Sha256::digest(presented.as_bytes()).into())
    }

    /// Rebuilds a hash read from storage.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(TokenHash)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Compares in constant time.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// A new random public id (URL-safe, 128 bits), used in manage, continue and interaction URLs.
pub fn new_id() -> String {
    let mut bytes = [0u8; ID_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// True when `text` could be an id made by [`new_id`]; lets handlers refuse junk before a lookup.
pub fn looks_like_id(text: &str) -> bool {
    text.len() == 22
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_256_bit_url_safe_and_unique() {
        let a = TokenValue::generate();
        let b = TokenValue::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).expect("b64").len(), 32);
        assert!(a
            .expose()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn hash_is_sha256_of_the_value_and_debug_hides_secrets() {
        let v = TokenValue::generate();
        assert_eq!(v.hash(), TokenHash::of(v.expose()));
        assert!(v.hash().ct_eq(&TokenHash::of(v.expose())));
        assert!(!v.hash().ct_eq(&TokenHash::of("other")));
        assert!(!format!("{v:?}").contains(v.expose()));
        // Known answer: SHA-256("abc").
        assert_eq!(
            hex::encode(TokenHash::of("abc").0),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ids_are_random_and_recognised() {
        let id = new_id();
        assert!(looks_like_id(&id));
        assert_ne!(id, new_id());
        assert!(!looks_like_id("../etc/passwd"));
        assert!(!looks_like_id(""));
    }
}
