//! A small, deliberately lenient reader for the parts of Structured Field Values (RFC 8941) that
//! HTTP Message Signatures and `Content-Digest` use: dictionaries whose members are inner lists or
//! byte sequences, and parameters.
//!
//! Two departures from RFC 8941, both needed to accept what the official Open Payments SDKs send:
//!
//! * inside an inner list, an item may be a *bare word* (`@method`), which is not a valid
//!   sf-token: the Rust `open-payments` crate 0.2 writes `(@method @target-uri ...)`;
//! * dictionary keys of byte-sequence dictionaries are compared case-insensitively by callers.
//!
//! Everything else follows RFC 8941 §4.2. The reader also records, for each dictionary member,
//! the exact byte span of its value in the received text, because RFC 9421 signs the received
//! `Signature-Input` text of a signature, not a re-serialisation of it.

use std::ops::Range;

/// A parsed bare item (RFC 8941 §3.3).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BareItem {
    /// An sf-integer.
    Integer(i64),
    /// An sf-decimal, kept as text (nothing here needs its value).
    Decimal(String),
    /// An sf-string, unescaped.
    String(String),
    /// An sf-token.
    Token(String),
    /// An sf-binary, decoded.
    Bytes(Vec<u8>),
    /// An sf-boolean.
    Boolean(bool),
}

/// A parameter list in received order.
pub(crate) type Params = Vec<(String, BareItem)>;

/// One item of an inner list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListItem {
    /// The string value (for a quoted item) or the bare word (for an unquoted one).
    pub value: String,
    /// Whether the item was an sf-string (`"@method"`) rather than a bare word (`@method`).
    pub quoted: bool,
    /// The item's parameters.
    pub params: Params,
}

/// The value of a dictionary member.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MemberValue {
    /// `( item item ... )`.
    InnerList(Vec<ListItem>),
    /// Any bare item.
    Item(BareItem),
}

/// One member of a dictionary.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    /// The member key as received.
    pub key: String,
    /// The member value.
    pub value: MemberValue,
    /// The member's parameters (after the inner list or item).
    pub params: Params,
    /// Byte range of the value *and* its parameters in the parsed text.
    pub value_span: Range<usize>,
}

/// A parse failure, with a short human description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SfError(pub String);

impl std::fmt::Display for SfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, SfError> {
    Err(SfError(msg.into()))
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eof(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ') | Some(b'\t')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), SfError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            err(format!(
                "expected '{}' at offset {}",
                char::from(c),
                self.pos
            ))
        }
    }

    /// RFC 8941 §4.2.3.3: `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`.
    /// Upper-case letters are tolerated here; callers decide what to do with them.
    fn key(&mut self) -> Result<String, SfError> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => self.pos += 1,
            _ => return err(format!("expected a key at offset {}", self.pos)),
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'*') {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(self.text[start..self.pos].to_string())
    }

    /// RFC 8941 §4.2.3.2: parameters.
    fn params(&mut self) -> Result<Params, SfError> {
        let mut params: Params = Vec::new();
        while self.peek() == Some(b';') {
            self.pos += 1;
            self.skip_sp();
            let key = self.key()?;
            let value = if self.peek() == Some(b'=') {
                self.pos += 1;
                self.bare_item()?
            } else {
                BareItem::Boolean(true)
            };
            if params.iter().any(|(k, _)| *k == key) {
                return err(format!("parameter '{key}' appears twice"));
            }
            params.push((key, value));
        }
        Ok(params)
    }

    /// RFC 8941 §4.2.3.1: bare item.
    fn bare_item(&mut self) -> Result<BareItem, SfError> {
        match self.peek() {
            Some(b'-') | Some(b'0'..=b'9') => self.number(),
            Some(b'"') => self.string().map(BareItem::String),
            Some(b':') => self.byte_sequence().map(BareItem::Bytes),
            Some(b'?') => self.boolean().map(BareItem::Boolean),
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => self.token().map(BareItem::Token),
            Some(c) => err(format!(
                "unexpected character '{}' at offset {}",
                char::from(c),
                self.pos
            )),
            None => err("unexpected end of text"),
        }
    }

    /// RFC 8941 §4.2.4: integer or decimal.
    fn number(&mut self) -> Result<BareItem, SfError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let digits_start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        if self.pos == digits_start {
            return err(format!("expected a digit at offset {}", self.pos));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let frac_start = self.pos;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            if self.pos == frac_start || self.pos - frac_start > 3 || frac_start - digits_start > 13
            {
                return err("malformed decimal");
            }
            return Ok(BareItem::Decimal(self.text[start..self.pos].to_string()));
        }
        // "If type is "integer" and input_number contains more than 15 characters, fail parsing."
        if self.pos - digits_start > 15 {
            return err("integer has more than 15 digits");
        }
        self.text[start..self.pos]
            .parse::<i64>()
            .map(BareItem::Integer)
            .or_else(|_| err("malformed integer"))
    }

    /// RFC 8941 §4.2.5: string (printable ASCII, `\"` and `\\` escapes only).
    fn string(&mut self) -> Result<String, SfError> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return err("unterminated string"),
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(char::from(c));
                            self.pos += 1;
                        }
                        _ => return err("bad escape in string"),
                    }
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c) if (0x20..=0x7e).contains(&c) => {
                    out.push(char::from(c));
                    self.pos += 1;
                }
                Some(_) => return err("string holds a character outside printable ASCII"),
            }
        }
    }

    /// RFC 8941 §4.2.6: token.
    fn token(&mut self) -> Result<String, SfError> {
        let start = self.pos;
        self.pos += 1;
        while let Some(c) = self.peek() {
            if is_tchar(c) || c == b':' || c == b'/' {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(self.text[start..self.pos].to_string())
    }

    /// RFC 8941 §4.2.7: byte sequence, standard base64 between colons.
    fn byte_sequence(&mut self) -> Result<Vec<u8>, SfError> {
        self.expect(b':')?;
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == b':' {
                break;
            }
            self.pos += 1;
        }
        if self.eof() {
            return err("unterminated byte sequence");
        }
        let b64 = &self.text[start..self.pos];
        self.pos += 1;
        decode_base64(b64).ok_or_else(|| SfError("byte sequence is not valid base64".into()))
    }

    /// RFC 8941 §4.2.8: boolean.
    fn boolean(&mut self) -> Result<bool, SfError> {
        self.expect(b'?')?;
        match self.peek() {
            Some(b'1') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b'0') => {
                self.pos += 1;
                Ok(false)
            }
            _ => err("malformed boolean"),
        }
    }

    /// RFC 8941 §4.2.1.2: inner list, plus bare words (see the module comment).
    fn inner_list(&mut self) -> Result<Vec<ListItem>, SfError> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        loop {
            self.skip_sp();
            match self.peek() {
                Some(b')') => {
                    self.pos += 1;
                    return Ok(items);
                }
                None => return err("unterminated inner list"),
                Some(b'"') => {
                    let value = self.string()?;
                    let params = self.params()?;
                    items.push(ListItem {
                        value,
                        quoted: true,
                        params,
                    });
                }
                Some(_) => {
                    let start = self.pos;
                    while let Some(c) = self.peek() {
                        if matches!(c, b' ' | b')' | b'(' | b';' | b'"' | b',') || !c.is_ascii() {
                            break;
                        }
                        if c.is_ascii_control() {
                            return err("control character in inner list");
                        }
                        self.pos += 1;
                    }
                    if self.pos == start {
                        return err(format!(
                            "unexpected character in inner list at offset {}",
                            self.pos
                        ));
                    }
                    let value = self.text[start..self.pos].to_string();
                    let params = self.params()?;
                    items.push(ListItem {
                        value,
                        quoted: false,
                        params,
                    });
                }
            }
            // "If the next character is not SP or ')', fail parsing."
            match self.peek() {
                Some(b' ') | Some(b')') => {}
                _ => return err(format!("expected ' ' or ')' at offset {}", self.pos)),
            }
        }
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Decodes standard base64, with or without padding.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    use base64::Engine;
    STANDARD
        .decode(text)
        .ok()
        .or_else(|| STANDARD_NO_PAD.decode(text).ok())
}

/// Parses an RFC 8941 dictionary (§4.2.2), keeping the text span of each member value.
///
/// An empty (or all-whitespace) text is an empty dictionary.
pub(crate) fn parse_dictionary(text: &str) -> Result<Vec<Member>, SfError> {
    let mut r = Reader::new(text);
    let mut members: Vec<Member> = Vec::new();
    r.skip_sp();
    r.skip_ows();
    if r.eof() {
        return Ok(members);
    }
    loop {
        let key = r.key()?;
        let value_start;
        let (value, params) = if r.peek() == Some(b'=') {
            r.pos += 1;
            value_start = r.pos;
            if r.peek() == Some(b'(') {
                let list = r.inner_list()?;
                (MemberValue::InnerList(list), r.params()?)
            } else {
                let item = r.bare_item()?;
                (MemberValue::Item(item), r.params()?)
            }
        } else {
            value_start = r.pos;
            (MemberValue::Item(BareItem::Boolean(true)), r.params()?)
        };
        let value_span = value_start..r.pos;
        // RFC 8941 §4.2.2: a later member with the same key overwrites the earlier one.
        members.retain(|m| m.key != key);
        members.push(Member {
            key,
            value,
            params,
            value_span,
        });
        r.skip_ows();
        if r.eof() {
            return Ok(members);
        }
        r.expect(b',')?;
        r.skip_ows();
        if r.eof() {
            return err("trailing comma in dictionary");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_keeps_raw_value_span() {
        let text =
            r#"sig1=("@method" "@target-uri");keyid="k";created=1, sig2=(@method);created=2"#;
        let members = parse_dictionary(text).unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(
            &text[members[0].value_span.clone()],
            r#"("@method" "@target-uri");keyid="k";created=1"#
        );
        assert_eq!(&text[members[1].value_span.clone()], "(@method);created=2");
        match &members[1].value {
            MemberValue::InnerList(items) => {
                assert_eq!(items[0].value, "@method");
                assert!(!items[0].quoted);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn byte_sequences_and_errors() {
        let members = parse_dictionary("sha-256=:AAEC:, md5=:AAAAAAAAAAAAAAAAAAAAAA==:").unwrap();
        assert_eq!(
            members[0].value,
            MemberValue::Item(BareItem::Bytes(vec![0, 1, 2]))
        );
        assert!(parse_dictionary("sha-256=:AAEC").is_err());
        assert!(parse_dictionary("sha-256=:AAEC:,").is_err());
        assert!(parse_dictionary("=x").is_err());
        assert!(parse_dictionary(r#"a=("x""y")"#).is_err());
        assert!(parse_dictionary(r#"a=();created=1;created=2"#).is_err());
        assert!(parse_dictionary("a=1234567890123456").is_err());
    }
}
