//! Domain: the grant and token state machines and the rules of the token lifecycle.
//! Pure where possible; the lifecycle services combine the rules with a [`crate::store::Store`].

pub mod clock;
pub mod error;
pub mod grant;
pub mod interaction;
pub mod introspection;
pub mod lifecycle;
pub mod token;

pub use error::DomainError;
