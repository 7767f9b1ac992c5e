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
/// Bytes of the creation-time prefix of a public id: milliseconds since the Unix epoch, 48 bits
/// big-endian (enough until the year 10889).
pub const ID_TIME_BYTES: usize = 6;
/// Length of an id made by [`new_id`]: base64url of [`ID_TIME_BYTES`] + [`ID_BYTES`] bytes.
pub const ID_LEN: usize = 30;
/// Length of an id made by [`new_random_id`], and of every id made before ids carried their
/// creation time (databases written by earlier versions still hold them).
pub const RANDOM_ID_LEN: usize = 22;

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

/// A new public id, used as the key of stored rows (grant, continue, manage and interaction
/// ids): 48 bits of creation time (milliseconds) followed by 128 random bits, base64url.
///
/// The random part alone makes an id unguessable, as before. The time prefix is for storage:
/// ids made close together sort close together, so the inserts of one commit land on the same
/// few B-tree pages of each index instead of one random page per row and index (issue 7: the
/// SQLite writer spent most of its time writing WAL frames for randomly placed index pages).
/// It tells nobody more than when the id was issued, which its holder knows anyway.
pub fn new_id() -> String {
    let mut bytes = [0u8; ID_TIME_BYTES + ID_BYTES];
    // Lowest 48 bits, big-endian, so that the base64url text starts with the most significant.
    let time = (crate::domain::clock::now_ms() as u64).to_be_bytes();
    bytes[..ID_TIME_BYTES].copy_from_slice(&time[8 - ID_TIME_BYTES..]);
    OsRng.fill_bytes(&mut bytes[ID_TIME_BYTES..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new purely random id (URL-safe, 128 bits), for values that are not row keys (nonces,
/// interaction references).
pub fn new_random_id() -> String {
    let mut bytes = [0u8; ID_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// True when `text` could be an id made by [`new_id`] or [`new_random_id`] (or by an earlier
/// version); lets handlers refuse junk before a lookup.
pub fn looks_like_id(text: &str) -> bool {
    (text.len() == ID_LEN || text.len() == RANDOM_ID_LEN)
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
        assert_eq!(id.len(), ID_LEN);
        assert!(looks_like_id(&id));
        assert_ne!(id, new_id());
        let random = new_random_id();
        assert_eq!(random.len(), RANDOM_ID_LEN);
        assert!(looks_like_id(&random));
        assert!(!looks_like_id(&id[..29]));
        assert!(!looks_like_id("../etc/passwd"));
        assert!(!looks_like_id(""));
    }

    #[test]
    fn ids_start_with_their_creation_time() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        let id = new_id();
        let bytes = URL_SAFE_NO_PAD.decode(&id).expect("b64");
        assert_eq!(bytes.len(), ID_TIME_BYTES + ID_BYTES);
        let mut time = [0u8; 8];
        time[8 - ID_TIME_BYTES..].copy_from_slice(&bytes[..ID_TIME_BYTES]);
        let millis = u64::from_be_bytes(time);
        assert!(
            millis >= before && millis < before + 60_000,
            "{millis} vs {before}"
        );
        // Two ids made in one millisecond share their time prefix (8 characters) and differ after.
        let (a, b) = (new_id(), new_id());
        assert_ne!(a[8..], b[8..]);
    }
}
