//! Wire types and cryptographic helpers shared by the Latchkey server and client.
//!
//! * [`gnap`]: Open Payments / GNAP (RFC 9635) request and response bodies, access items, error codes.
//! * [`oauth`]: OAuth 2.0 (RFC 6749 §4.4, RFC 7009, RFC 7662) bodies and error codes.
//! * [`wallet`]: the Open Payments wallet address document.
//! * [`httpsig`]: HTTP Message Signatures (RFC 9421), Ed25519, sign and verify.
//! * [`digest`]: `Content-Digest` (RFC 9530).
//! * [`keys`]: Ed25519 keys, JWKs and PEM loading.
//!
//! This crate does no I/O.

pub mod digest;
pub mod gnap;
pub mod httpsig;
pub mod keys;
pub mod oauth;
pub mod wallet;
