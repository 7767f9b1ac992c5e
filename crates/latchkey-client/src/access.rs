//! Short constructors for the access items of a grant request.
//!
//! ```
//! use latchkey_client::access;
//! use latchkey_client::gnap::Action;
//!
//! let item = access::incoming_payment(&[Action::Create, Action::Read], None);
//! assert_eq!(item.type_name(), "incoming-payment");
//! ```

use latchkey_proto::gnap::{
    AccessItem, Action, IncomingPaymentAccess, OutgoingLimits, OutgoingPaymentAccess, QuoteAccess,
};

/// `{"type":"incoming-payment","actions":[...],"identifier"?}`.
pub fn incoming_payment(actions: &[Action], identifier: Option<&str>) -> AccessItem {
    AccessItem::IncomingPayment(IncomingPaymentAccess {
        actions: actions.to_vec(),
        identifier: identifier.map(str::to_string),
    })
}

/// `{"type":"quote","actions":[...]}` (with `identifier` if given, which Latchkey accepts).
pub fn quote(actions: &[Action], identifier: Option<&str>) -> AccessItem {
    AccessItem::Quote(QuoteAccess {
        actions: actions.to_vec(),
        identifier: identifier.map(str::to_string),
    })
}

/// `{"type":"outgoing-payment","actions":[...],"identifier","limits"?}`: the sending wallet
/// address is required.
pub fn outgoing_payment(
    actions: &[Action],
    identifier: &str,
    limits: Option<OutgoingLimits>,
) -> AccessItem {
    AccessItem::OutgoingPayment(OutgoingPaymentAccess {
        actions: actions.to_vec(),
        identifier: identifier.to_string(),
        limits,
    })
}

/// Parses an action name (`create`, `read`, `read-all`, `list`, `list-all`, `complete`).
pub fn parse_action(name: &str) -> Option<Action> {
    serde_json::from_value(serde_json::Value::String(name.trim().to_string())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses() {
        assert_eq!(parse_action("read-all"), Some(Action::ReadAll));
        assert_eq!(parse_action(" list "), Some(Action::List));
        assert_eq!(parse_action("fly"), None);
        let item = outgoing_payment(&[Action::Create], "https://w.example/a", None);
        assert_eq!(item.identifier(), Some("https://w.example/a"));
        assert!(item.validate().is_ok());
        let json = serde_json::to_value(quote(&[Action::Create], None)).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"type":"quote","actions":["create"]})
        );
    }
}
