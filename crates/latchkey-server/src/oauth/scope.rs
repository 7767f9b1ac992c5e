//! Scope rules (RFC 6749 §3.3).
//!
//! A client is registered with a set of scopes. A token request may ask for a subset; without a
//! `scope` parameter the token carries every registered scope.

/// Why a scope is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// A scope-token has a character RFC 6749 §3.3 does not allow.
    #[error("`{0}` is not a valid scope (RFC 6749 §3.3 allows printable ASCII except space, `\"` and `\\`)")]
    Malformed(String),
    /// The client asked for a scope it is not registered with.
    #[error("scope `{0}` is not granted to this client")]
    NotAllowed(String),
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Checks and de-duplicates scopes given one by one (CLI `--scope`, admin API `scopes`),
/// keeping their order.
pub fn normalize(scopes: &[String]) -> Result<Vec<String>, ScopeError> {
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        if !is_scope_token(scope) {
            return Err(ScopeError::Malformed(scope.clone()));
        }
        if !out.contains(scope) {
            out.push(scope.clone());
        }
    }
    Ok(out)
}

/// Parses a `scope` request parameter.
///
/// RFC 6749 §3.3: "The value of the scope parameter is expressed as a list of space-delimited,
/// case-sensitive strings." Repeated spaces are tolerated; duplicates are dropped.
pub fn parse(param: &str) -> Result<Vec<String>, ScopeError> {
    let parts: Vec<String> = param
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    normalize(&parts)
}

/// The scopes a token gets.
///
/// RFC 6749 §3.3: "If the client omits the scope parameter when requesting authorization, the
/// authorization server MUST either process the request using a pre-defined default value or
/// fail the request indicating an invalid scope." The default is every registered scope.
/// A requested scope outside the registered set is refused (`invalid_scope`, §5.2: "The
/// requested scope is invalid, unknown, malformed, or exceeds the scope granted by the
/// resource owner").
pub fn grant(requested: Option<&str>, registered: &[String]) -> Result<Vec<String>, ScopeError> {
    let requested = match requested {
        None => return Ok(registered.to_vec()),
        Some(text) => parse(text)?,
    };
    if requested.is_empty() {
        return Ok(registered.to_vec());
    }
    if let Some(extra) = requested.iter().find(|s| !registered.contains(s)) {
        return Err(ScopeError::NotAllowed(extra.clone()));
    }
    Ok(requested)
}

/// The space-separated form used in token and introspection responses.
pub fn join(scopes: &[String]) -> String {
    scopes.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn scope_token_syntax() {
        assert!(is_scope_token("read"));
        assert!(is_scope_token("payments:write"));
        assert!(is_scope_token("a!#[]~"));
        assert!(!is_scope_token(""));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a\\b"));
        assert!(!is_scope_token("é"));
        assert!(!is_scope_token("a\tb"));
    }

    #[test]
    fn omitted_or_empty_scope_means_all_registered() {
        let reg = s(&["read", "write"]);
        assert_eq!(grant(None, &reg).expect("ok"), reg);
        assert_eq!(grant(Some(""), &reg).expect("ok"), reg);
        assert_eq!(grant(Some("  "), &reg).expect("ok"), reg);
        assert_eq!(grant(None, &[]).expect("ok"), Vec::<String>::new());
    }

    #[test]
    fn subsets_are_granted_in_request_order_without_duplicates() {
        let reg = s(&["read", "write", "admin"]);
        assert_eq!(
            grant(Some("write  read write"), &reg).expect("ok"),
            s(&["write", "read"])
        );
    }

    #[test]
    fn outside_or_malformed_scopes_are_refused() {
        let reg = s(&["read"]);
        assert_eq!(
            grant(Some("read write"), &reg),
            Err(ScopeError::NotAllowed("write".into()))
        );
        assert_eq!(
            grant(Some("READ"), &reg),
            Err(ScopeError::NotAllowed("READ".into()))
        );
        assert!(matches!(
            grant(Some("re\"ad"), &reg),
            Err(ScopeError::Malformed(_))
        ));
        assert!(matches!(
            grant(Some("x"), &[]),
            Err(ScopeError::NotAllowed(_))
        ));
        assert_eq!(normalize(&s(&["a", "a", "b"])).expect("ok"), s(&["a", "b"]));
        assert!(normalize(&s(&[""])).is_err());
    }
}
