//! Ed25519 keys: JSON Web Keys (RFC 7517, RFC 8037) as published at `{wallet address}/jwks.json`,
//! and private keys in the PKCS#8 forms the Open Payments SDKs and snippets use.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{SigningKey, VerifyingKey, PUBLIC_KEY_LENGTH, SECRET_KEY_LENGTH};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a key could not be read or used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The JWK's `kty`/`crv` pair is not `OKP`/`Ed25519`.
    #[error("unsupported key type {kty}/{crv}: only OKP/Ed25519 keys are accepted")]
    UnsupportedKeyType {
        /// The received `kty`.
        kty: String,
        /// The received `crv`.
        crv: String,
    },
    /// The JWK names an algorithm other than EdDSA.
    #[error("unsupported JWK alg {0:?}: only EdDSA is accepted")]
    UnsupportedAlg(String),
    /// The JWK's `use` is not `sig`.
    #[error("JWK use {0:?} does not allow signatures")]
    UnsupportedUse(String),
    /// The JWK's `x` is not base64url.
    #[error("JWK x is not valid base64url")]
    InvalidBase64Url,
    /// The JWK's `x` does not decode to 32 bytes.
    #[error("JWK x must be {PUBLIC_KEY_LENGTH} bytes, got {0}")]
    InvalidPublicKeyLength(usize),
    /// The 32 bytes are not a valid Ed25519 point.
    #[error("JWK x is not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// The private key text is not PEM, base64 of PEM, nor base64 of DER.
    #[error("private key is neither PKCS#8 PEM, base64 of PEM, nor base64 of PKCS#8 DER")]
    UnrecognisedFormat,
    /// The PEM text is broken or has another label.
    #[error("invalid PEM: {0}")]
    InvalidPem(String),
    /// The DER is not an Ed25519 PKCS#8 private key.
    #[error("not an Ed25519 PKCS#8 private key: {0}")]
    InvalidPkcs8(String),
}

/// An Ed25519 public key as a JSON Web Key: `{"kid","kty":"OKP","crv":"Ed25519","x","alg"?,"use"?}`.
///
/// RFC 8037 §2: "The parameter "x" MUST be present and contain the public key encoded using the
/// base64url \[RFC4648\] encoding."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key id, matched against the `keyid` signature parameter.
    pub kid: String,
    /// Key type; `OKP` for Ed25519.
    pub kty: String,
    /// Curve; `Ed25519`.
    pub crv: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
    /// Algorithm; `EdDSA` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Public key use; `sig` when present.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

impl Jwk {
    /// The JWK of `key`, with `alg: "EdDSA"` (as `@interledger/http-signature-utils` writes it).
    pub fn from_verifying_key(kid: impl Into<String>, key: &VerifyingKey) -> Jwk {
        Jwk {
            kid: kid.into(),
            kty: "OKP".to_string(),
            crv: "Ed25519".to_string(),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
            alg: Some("EdDSA".to_string()),
            use_: None,
        }
    }

    /// The Ed25519 public key this JWK holds.
    ///
    /// Rejects keys that are not `OKP`/`Ed25519`, an `alg` other than `EdDSA` (or the
    /// fully-specified `Ed25519`), a `use` other than `sig`, and an `x` that is not 32 bytes of
    /// base64url or not a valid curve point.
    pub fn to_verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(KeyError::UnsupportedKeyType {
                kty: self.kty.clone(),
                crv: self.crv.clone(),
            });
        }
        if let Some(alg) = &self.alg {
            if alg != "EdDSA" && alg != "Ed25519" {
                return Err(KeyError::UnsupportedAlg(alg.clone()));
            }
        }
        if let Some(use_) = &self.use_ {
            if use_ != "sig" {
                return Err(KeyError::UnsupportedUse(use_.clone()));
            }
        }
        // RFC 7515 §2: base64url "with all trailing '=' characters omitted"; tolerate them anyway.
        let bytes = URL_SAFE_NO_PAD
            .decode(self.x.trim_end_matches('='))
            .map_err(|_| KeyError::InvalidBase64Url)?;
        let bytes: [u8; PUBLIC_KEY_LENGTH] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::InvalidPublicKeyLength(bytes.len()))?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPublicKey)
    }
}

/// A JWK Set (RFC 7517 §5): the body of `{wallet address}/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// The key whose `kid` is `kid`, if any.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// RFC 8410 §7: the fixed DER prefix of a version-1 PKCS#8 Ed25519 private key, followed by the
/// 32-byte seed: `SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET
/// STRING (32) } }`.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Loads an Ed25519 private key from any of the forms the Open Payments tooling hands out:
///
/// * PKCS#8 PEM text (`-----BEGIN PRIVATE KEY-----`), LF or CRLF line ends (the Rust
///   `open-payments` crate writes CRLF), with or without a byte-order mark;
/// * base64 of that PEM text (the `PRIVATE_KEY_BASE_64` of the SDK snippets);
/// * base64 of the PKCS#8 DER.
pub fn load_signing_key(text_or_pem: &str) -> Result<SigningKey, KeyError> {
    let text = text_or_pem.trim_start_matches('\u{feff}').trim();
    if text.starts_with("-----BEGIN") {
        return from_pem(text);
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let decoded = STANDARD
        .decode(&compact)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .map_err(|_| KeyError::UnrecognisedFormat)?;
    if let Ok(inner) = std::str::from_utf8(&decoded) {
        let inner = inner.trim_start_matches('\u{feff}').trim();
        if inner.starts_with("-----BEGIN") {
            return from_pem(inner);
        }
    }
    from_der(&decoded)
}

fn from_pem(text: &str) -> Result<SigningKey, KeyError> {
    let text = text.replace('\r', "");
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some(PEM_BEGIN) => {}
        Some(other) => {
            return Err(KeyError::InvalidPem(format!(
                "expected {PEM_BEGIN}, found {}",
                other.chars().take(40).collect::<String>()
            )))
        }
        None => return Err(KeyError::InvalidPem("empty".into())),
    }
    let mut body = String::new();
    let mut ended = false;
    for line in lines.by_ref() {
        if line == PEM_END {
            ended = true;
            break;
        }
        if line.starts_with("-----") || line.contains(':') {
            return Err(KeyError::InvalidPem(
                "unexpected header or boundary line".into(),
            ));
        }
        body.push_str(line);
    }
    if !ended {
        return Err(KeyError::InvalidPem(format!("missing {PEM_END}")));
    }
    if lines.next().is_some() {
        return Err(KeyError::InvalidPem(format!("text after {PEM_END}")));
    }
    let der = STANDARD
        .decode(&body)
        .map_err(|_| KeyError::InvalidPem("body is not valid base64".into()))?;
    from_der(&der)
}

fn from_der(der: &[u8]) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_der(der).map_err(|e| KeyError::InvalidPkcs8(e.to_string()))
}

/// The PKCS#8 (RFC 5208 / RFC 8410, version 1) PEM text of `key`, LF line ends, as OpenSSL and
/// Node's `crypto` write it.
pub fn signing_key_to_pkcs8_pem(key: &SigningKey) -> String {
    let mut der = Vec::with_capacity(PKCS8_ED25519_PREFIX.len() + 32);
    der.extend_from_slice(&PKCS8_ED25519_PREFIX);
    der.extend_from_slice(key.as_bytes());
    // 48 bytes of DER make exactly 64 base64 characters: one PEM line.
    format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", STANDARD.encode(der))
}

/// A fresh Ed25519 key from the operating system's CSPRNG. RFC 8032 §5.1.5: "The private key
/// is 32 octets (256 bits, corresponding to b) of cryptographically secure random data."
pub fn generate_signing_key() -> SigningKey {
    let mut secret = [0u8; SECRET_KEY_LENGTH];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    SigningKey::from_bytes(&secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePrivateKey;

    // RFC 9421 Appendix B.1.4, test-key-ed25519.
    const RFC_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n";
    const RFC_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";

    #[test]
    fn loads_pem_and_derives_rfc_public_key() {
        let key = load_signing_key(RFC_PEM).unwrap();
        let jwk = Jwk::from_verifying_key("test-key-ed25519", &key.verifying_key());
        assert_eq!(jwk.x, RFC_X);
    }

    #[test]
    fn loads_crlf_bom_and_indented_pem() {
        let crlf = format!("\u{feff}{}", RFC_PEM.replace('\n', "\r\n"));
        let a = load_signing_key(&crlf).unwrap();
        let b = load_signing_key(RFC_PEM).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        let indented = RFC_PEM
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            load_signing_key(&indented).unwrap().to_bytes(),
            b.to_bytes()
        );
    }

    #[test]
    fn loads_base64_of_pem_and_base64_der() {
        let b64_pem = STANDARD.encode(RFC_PEM);
        let der_b64 = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF";
        let want = load_signing_key(RFC_PEM).unwrap().to_bytes();
        assert_eq!(load_signing_key(&b64_pem).unwrap().to_bytes(), want);
        assert_eq!(load_signing_key(der_b64).unwrap().to_bytes(), want);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            load_signing_key("not a key!").unwrap_err(),
            KeyError::UnrecognisedFormat
        );
        assert!(matches!(
            load_signing_key("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n-----END PUBLIC KEY-----"),
            Err(KeyError::InvalidPem(_))
        ));
        assert!(matches!(
            load_signing_key("-----BEGIN PRIVATE KEY-----\nMC4CAQAw\n"),
            Err(KeyError::InvalidPem(_))
        ));
        assert!(matches!(
            load_signing_key(&STANDARD.encode([1u8; 48])),
            Err(KeyError::InvalidPkcs8(_))
        ));
    }

    #[test]
    fn pem_round_trip_and_pkcs8_v2() {
        let key = generate_signing_key();
        let pem = signing_key_to_pkcs8_pem(&key);
        // Our v1 PEM is readable by the PKCS#8 decoder...
        assert_eq!(
            SigningKey::from_pkcs8_pem(&pem).unwrap().to_bytes(),
            key.to_bytes()
        );
        assert_eq!(load_signing_key(&pem).unwrap().to_bytes(), key.to_bytes());
        // ...and we read the v2 form (with the public key) that ed25519-dalek writes.
        let v2 = key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        assert_ne!(v2.as_str(), pem);
        assert_eq!(load_signing_key(&v2).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(
            signing_key_to_pkcs8_pem(&load_signing_key(RFC_PEM).unwrap()),
            RFC_PEM
        );
    }

    #[test]
    fn jwk_round_trip_and_serde() {
        let key = generate_signing_key();
        let jwk = Jwk::from_verifying_key("k1", &key.verifying_key());
        assert_eq!(jwk.to_verifying_key().unwrap(), key.verifying_key());
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["alg"], "EdDSA");
        assert!(json.get("use").is_none());
        let with_use: Jwk = serde_json::from_value(serde_json::json!({
            "kid": "k1", "kty": "OKP", "crv": "Ed25519", "x": RFC_X, "use": "sig"
        }))
        .unwrap();
        assert_eq!(with_use.use_.as_deref(), Some("sig"));
        assert_eq!(serde_json::to_value(&with_use).unwrap()["use"], "sig");
        let set: JwkSet = serde_json::from_str(&format!(
            r#"{{"keys":[{}]}}"#,
            serde_json::to_string(&with_use).unwrap()
        ))
        .unwrap();
        assert_eq!(set.find("k1"), Some(&with_use));
        assert_eq!(set.find("k2"), None);
    }

    #[test]
    fn jwk_rejections() {
        let good = Jwk {
            kid: "k".into(),
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: RFC_X.into(),
            alg: None,
            use_: None,
        };
        assert!(good.to_verifying_key().is_ok());
        let mut ec = good.clone();
        ec.kty = "EC".into();
        ec.crv = "P-256".into();
        assert!(matches!(
            ec.to_verifying_key(),
            Err(KeyError::UnsupportedKeyType { .. })
        ));
        let mut x448 = good.clone();
        x448.crv = "Ed448".into();
        assert!(matches!(
            x448.to_verifying_key(),
            Err(KeyError::UnsupportedKeyType { .. })
        ));
        let mut es = good.clone();
        es.alg = Some("ES256".into());
        assert_eq!(
            es.to_verifying_key(),
            Err(KeyError::UnsupportedAlg("ES256".into()))
        );
        let mut enc = good.clone();
        enc.use_ = Some("enc".into());
        assert_eq!(
            enc.to_verifying_key(),
            Err(KeyError::UnsupportedUse("enc".into()))
        );
        let mut short = good.clone();
        short.x = URL_SAFE_NO_PAD.encode([7u8; 31]);
        assert_eq!(
            short.to_verifying_key(),
            Err(KeyError::InvalidPublicKeyLength(31))
        );
        let mut bad = good.clone();
        bad.x = "***".into();
        assert_eq!(bad.to_verifying_key(), Err(KeyError::InvalidBase64Url));
    }
}
