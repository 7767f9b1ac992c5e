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
/// Length of an access token value made by [`TokenValue::generate_access_token`]: base64url of
/// [`ID_TIME_BYTES`] + [`TOKEN_BYTES`] bytes. Values of any other length (secrets, continuation
/// tokens, access tokens issued before tokens carried their creation time) are keyed by their
/// plain SHA-256.
pub const ACCESS_TOKEN_LEN: usize = 51;
/// Characters of base64url text that encode exactly the [`ID_TIME_BYTES`] of a time prefix.
const TIME_PREFIX_CHARS: usize = 8;

// The lengths above follow from the byte counts (base64url without padding: 4 characters per
// 3 bytes, rounded up), and the time prefix ends on a character boundary.
const _: () = assert!(ACCESS_TOKEN_LEN == ((ID_TIME_BYTES + TOKEN_BYTES) * 4).div_ceil(3));
const _: () = assert!(TIME_PREFIX_CHARS * 3 == ID_TIME_BYTES * 4);

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

    /// Generates a new access token value: [`ID_TIME_BYTES`] of creation time (milliseconds,
    /// big-endian) followed by [`TOKEN_BYTES`] from the OS CSPRNG, base64url.
    ///
    /// The random part alone makes the value unguessable, as with [`TokenValue::generate`]. The
    /// time prefix is for storage, as in [`new_id`]: it becomes the first bytes of the value's
    /// lookup key ([`TokenHash::of`]), so tokens issued close together have keys that sort
    /// close together. Each insert then lands on the right-most page of the token-key index
    /// (PostgreSQL) or table (SQLite's OAuth tokens) instead of a random page per token, which
    /// each commit would otherwise write out whole (issue 7: SQLite's WAL frames, PostgreSQL's
    /// full-page images after a checkpoint, and at 10 M tokens index pages no longer cached).
    /// It tells nobody more than when the token was issued, which its holder knows anyway.
    pub fn generate_access_token() -> Self {
        let mut bytes = [0u8; ID_TIME_BYTES + TOKEN_BYTES];
        write_time_prefix(&mut bytes);
        OsRng.fill_bytes(&mut bytes[ID_TIME_BYTES..]);
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

    /// The plain SHA-256 kept of a value that is only ever compared ([`TokenHash::of_secret`]).
    pub fn secret_hash(&self) -> TokenHash {
        TokenHash::of_secret(&self.0)
    }
}

impl fmt::Debug for TokenValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenValue(<redacted>)")
    }
}

/// The lookup key of a token value, derived from its SHA-256: the only form in which tokens and
/// secrets are stored.
///
/// A fast hash is enough because every value carries 256 bits of server-generated entropy
/// (DESIGN.md: "Server-generated client secrets carry full entropy, so a fast hash suffices").
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

/// Bytes of SHA-256 kept after a time prefix: 208 bits, far beyond any guessing.
const KEYED_DIGEST_BYTES: usize = 32 - ID_TIME_BYTES;

impl TokenHash {
    /// The lookup key of a presented value (from a header or a body), and of a value being
    /// issued: the same function on both sides, so the two always agree.
    ///
    /// For a value shaped like [`TokenValue::generate_access_token`]'s ([`ACCESS_TOKEN_LEN`]
    /// characters whose first 8 decode as base64url), the key is the value's 6-byte time
    /// prefix followed by the first 26 bytes of its SHA-256; for any other value, its whole
    /// SHA-256. Storage thus learns the issue time (public) and never the random part. Finding
    /// another value with the same key still means matching 208 bits of SHA-256.
    pub fn of(presented: &str) -> Self {
        let digest = Self::of_secret(presented);
        match time_prefix(presented) {
            Some(prefix) => {
                let mut key = [0u8; 32];
                key[..ID_TIME_BYTES].copy_from_slice(&prefix);
                key[ID_TIME_BYTES..].copy_from_slice(&digest.0[..KEYED_DIGEST_BYTES]);
                TokenHash(key)
            }
            None => digest,
        }
    }

    /// The plain SHA-256 of a secret that is only ever compared, never looked up (an
    /// operator's admin token or IdP secret, a client secret, a CSRF token): whatever its
    /// shape, none of its bytes are kept as they are.
    pub fn of_secret(presented: &str) -> Self {
        TokenHash(Sha256::digest(presented.as_bytes()).into())
    }

    /// Whether two secret texts are equal, compared in constant time through their
    /// [`TokenHash::of_secret`].
    pub fn secrets_match(a: &str, b: &str) -> bool {
        Self::of_secret(a).matches_secret(b)
    }

    /// Whether this kept [`TokenHash::of_secret`] is that of the `presented` secret, compared
    /// in constant time.
    pub fn matches_secret(&self, presented: &str) -> bool {
        self.ct_eq(&Self::of_secret(presented))
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
        // The last bytes: the first ones of an access token's key are its issue time, which
        // tokens issued in the same minute share.
        write!(f, "TokenHash(…{})", hex::encode(&self.0[28..]))
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
    write_time_prefix(&mut bytes);
    OsRng.fill_bytes(&mut bytes[ID_TIME_BYTES..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Writes the current time in milliseconds into the first [`ID_TIME_BYTES`] of `bytes`: the
/// lowest 48 bits, big-endian, so that the base64url text starts with the most significant.
fn write_time_prefix(bytes: &mut [u8]) {
    let time = (crate::domain::clock::now_ms() as u64).to_be_bytes();
    bytes[..ID_TIME_BYTES].copy_from_slice(&time[8 - ID_TIME_BYTES..]);
}

/// The time prefix of a value shaped like an access token's, if it is one.
fn time_prefix(presented: &str) -> Option<[u8; ID_TIME_BYTES]> {
    if presented.len() != ACCESS_TOKEN_LEN {
        return None;
    }
    let mut prefix = [0u8; ID_TIME_BYTES];
    let text = presented.as_bytes().get(..TIME_PREFIX_CHARS)?;
    match URL_SAFE_NO_PAD.decode_slice(text, &mut prefix) {
        Ok(ID_TIME_BYTES) => Some(prefix),
        _ => None,
    }
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

    fn millis_of(prefix: &[u8]) -> u64 {
        let mut time = [0u8; 8];
        time[8 - ID_TIME_BYTES..].copy_from_slice(&prefix[..ID_TIME_BYTES]);
        u64::from_be_bytes(time)
    }

    #[test]
    fn access_tokens_carry_their_creation_time_and_256_random_bits() {
        let before = crate::domain::clock::now_ms() as u64;
        let a = TokenValue::generate_access_token();
        let b = TokenValue::generate_access_token();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), ACCESS_TOKEN_LEN);
        let bytes = URL_SAFE_NO_PAD.decode(a.expose()).expect("b64");
        assert_eq!(bytes.len(), ID_TIME_BYTES + TOKEN_BYTES);
        let millis = millis_of(&bytes);
        assert!(
            millis >= before && millis < before + 60_000,
            "{millis} vs {before}"
        );
        // The random parts differ even when the time prefixes are equal.
        assert_ne!(
            a.expose()[TIME_PREFIX_CHARS..],
            b.expose()[TIME_PREFIX_CHARS..]
        );
    }

    #[test]
    fn an_access_token_is_keyed_by_its_time_prefix_then_its_digest() {
        let value = TokenValue::generate_access_token();
        let key = value.hash();
        assert_eq!(key, TokenHash::of(value.expose()));
        let bytes = URL_SAFE_NO_PAD.decode(value.expose()).expect("b64");
        assert_eq!(key.0[..ID_TIME_BYTES], bytes[..ID_TIME_BYTES]);
        let digest: [u8; 32] = Sha256::digest(value.expose().as_bytes()).into();
        assert_eq!(key.0[ID_TIME_BYTES..], digest[..KEYED_DIGEST_BYTES]);
        // No part of the random bytes reaches the key as such.
        assert!(!key
            .0
            .windows(8)
            .any(|w| bytes[ID_TIME_BYTES..].windows(8).any(|r| r == w)));

        // Keys of tokens issued in later milliseconds sort after earlier ones, whatever their
        // random parts: that is what keeps the inserts of one commit on one index page.
        let shaped = |millis: u64, random: u8| {
            let mut bytes = [random; ID_TIME_BYTES + TOKEN_BYTES];
            bytes[..ID_TIME_BYTES].copy_from_slice(&millis.to_be_bytes()[8 - ID_TIME_BYTES..]);
            TokenHash::of(&URL_SAFE_NO_PAD.encode(bytes))
        };
        let now = crate::domain::clock::now_ms() as u64;
        assert!(shaped(now, 0xff).0 < shaped(now + 1, 0x00).0);
        assert!(shaped(now - 1, 0xff).0 < shaped(now, 0x00).0);
    }

    #[test]
    fn the_access_token_key_has_a_known_answer() {
        // Stored keys must never change shape: a fixed value and its key, computed
        // independently (Python: time bytes + hashlib.sha256(value).digest()[:26]).
        let value = "AZqzxNXmAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        assert_eq!(
            hex::encode(TokenHash::of(value).0),
            "019ab3c4d5e66b4eb11081690e85d6b3553859e223d38a1f5df03e5da4943adc"
        );
    }

    #[test]
    fn secrets_are_compared_by_their_plain_sha256() {
        let shaped = TokenValue::generate_access_token();
        let digest: [u8; 32] = Sha256::digest(shaped.expose().as_bytes()).into();
        assert_eq!(TokenHash::of_secret(shaped.expose()).0, digest);
        assert_ne!(TokenHash::of_secret(shaped.expose()), shaped.hash());
    }

    #[test]
    fn other_values_keep_their_plain_sha256() {
        // Secrets, continuation tokens, and access tokens issued before tokens carried their
        // creation time (43 characters): stored databases hold their plain SHA-256.
        for value in [
            TokenValue::generate().expose().to_string(),
            "abc".to_string(),
            // Access-token length, but the first 8 characters are not base64url.
            format!(
                "+/+/+/+/{}",
                &TokenValue::generate_access_token().expose()[8..]
            ),
        ] {
            let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
            assert_eq!(TokenHash::of(&value).0, digest, "{value}");
        }
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
        let millis = millis_of(&bytes);
        assert!(
            millis >= before && millis < before + 60_000,
            "{millis} vs {before}"
        );
        // Two ids made in one millisecond share their time prefix (8 characters) and differ after.
        let (a, b) = (new_id(), new_id());
        assert_ne!(a[8..], b[8..]);
    }
}
