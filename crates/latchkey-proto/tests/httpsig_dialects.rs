//! What the verifier accepts and refuses: the Rust SDK 0.2 dialect, parameter order, bare base64,
//! several signatures, the `created` window, required components, and malformed input.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use latchkey_proto::digest::content_digest_sha512;
use latchkey_proto::httpsig::{
    parse_request_signature, parse_signature, sign_request, RequestParts, SignatureError,
};

const URI: &str = "https://auth.example.test/token/abc";
const BODY: &str = r#"{"access_token":{"access":[]}}"#;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn headers(with_body: bool) -> Vec<(String, String)> {
    let mut h = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("authorization".to_string(), "GNAP T0KEN".to_string()),
    ];
    if with_body {
        h.push(("content-length".into(), BODY.len().to_string()));
        h.push((
            "content-digest".into(),
            content_digest_sha512(BODY.as_bytes()),
        ));
    }
    h
}

/// Signs the way a client of the given dialect does: `"name": value` lines, then
/// `"@signature-params": {params}` with `params` exactly as it will be sent.
fn sign_raw(parts: &RequestParts, components: &[&str], params: &str) -> String {
    let mut base = String::new();
    for c in components {
        let value = match *c {
            "@method" => parts.method.to_string(),
            "@target-uri" => parts.target_uri.to_string(),
            name => parts
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap(),
        };
        base.push_str(&format!("\"{c}\": {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {params}"));
    STANDARD.encode(key().sign(base.as_bytes()).to_bytes())
}

fn parts<'a>(method: &'a str, h: &'a [(String, String)]) -> RequestParts<'a> {
    RequestParts {
        method,
        target_uri: URI,
        headers: h,
    }
}

#[test]
fn rust_sdk_unquoted_dialect_verifies() {
    // open-payments 0.2.0: components unquoted in Signature-Input, quoted in the base lines;
    // @signature-params is the unquoted text; Signature is bare base64; created before keyid.
    let h = headers(true);
    let p = parts("POST", &h);
    let comps = [
        "@method",
        "@target-uri",
        "content-type",
        "authorization",
        "content-digest",
        "content-length",
    ];
    let params = format!("({});created=1700000000;keyid=\"k1\"", comps.join(" "));
    let sig = sign_raw(&p, &comps, &params);
    let parsed = parse_signature(&p, &format!("sig1={params}"), &sig).unwrap();
    assert!(!parsed.components_quoted());
    assert!(parsed.signature_was_bare());
    assert_eq!(parsed.components(), comps);
    assert_eq!(parsed.keyid(), "k1");
    assert_eq!(parsed.created(), Some(1700000000));
    assert_eq!(parsed.signature_params(), params);
    assert!(parsed
        .signature_base()
        .starts_with("\"@method\": POST\n\"@target-uri\": "));
    assert_eq!(parsed.verify(&key().verifying_key()), Ok(()));
    assert_eq!(parsed.check_required_components(true, true), Ok(()));
}

#[test]
fn unquoted_dialect_signed_with_unquoted_base_lines_is_refused() {
    // A hypothetical signer that also left the base lines unquoted signs something else; RFC
    // 9421 bases always quote the identifier, and so does the real Rust SDK.
    let h = headers(false);
    let p = parts("DELETE", &h);
    let params = "(@method @target-uri);created=1700000000;keyid=\"k1\"";
    let base = format!("@method: DELETE\n@target-uri: {URI}\n\"@signature-params\": {params}");
    let sig = STANDARD.encode(key().sign(base.as_bytes()).to_bytes());
    let parsed = parse_signature(&p, &format!("sig1={params}"), &sig).unwrap();
    assert_eq!(
        parsed.verify(&key().verifying_key()),
        Err(SignatureError::BadSignature)
    );
}

#[test]
fn parameters_in_any_order() {
    let h = headers(false);
    let p = parts("DELETE", &h);
    let comps = ["@method", "@target-uri", "authorization"];
    let list = r#"("@method" "@target-uri" "authorization")"#;
    for tail in [
        r#";keyid="k1";created=1700000000"#,
        r#";created=1700000000;keyid="k1""#,
        r#";alg="ed25519";created=1700000000;keyid="k1""#,
        r#";created=1700000000;keyid="k1";alg="ed25519";nonce="n-1""#,
        r#";keyid="k1";expires=1700000300;created=1700000000;tag="gnap""#,
    ] {
        let params = format!("{list}{tail}");
        let sig = format!("sig1=:{}:", sign_raw(&p, &comps, &params));
        let parsed = parse_signature(&p, &format!("sig1={params}"), &sig).unwrap();
        assert_eq!(parsed.keyid(), "k1", "{tail}");
        assert_eq!(parsed.created(), Some(1700000000), "{tail}");
        assert_eq!(parsed.verify(&key().verifying_key()), Ok(()), "{tail}");
    }
}

#[test]
fn alg_other_than_ed25519_is_refused() {
    let h = headers(false);
    let p = parts("DELETE", &h);
    let err = parse_signature(
        &p,
        r#"sig1=("@method");keyid="k1";created=1;alg="rsa-pss-sha512""#,
        "sig1=:AAAA:",
    )
    .unwrap_err();
    assert_eq!(err, SignatureError::UnsupportedAlg("rsa-pss-sha512".into()));
    assert_eq!(
        err.to_string(),
        "unsupported signature algorithm \"rsa-pss-sha512\": only ed25519 is accepted"
    );
}

#[test]
fn bare_and_dictionary_signatures_are_the_same() {
    let h = headers(false);
    let p = parts("POST", &h);
    let input = r#"sig1=("@method" "@target-uri");keyid="k1";created=1700000000"#;
    let params = &input["sig1=".len()..];
    let b64 = sign_raw(&p, &["@method", "@target-uri"], params);
    for sig in [
        b64.clone(),
        format!("sig1=:{b64}:"),
        format!("  sig1=:{b64}:  "),
        b64.trim_end_matches('=').to_string(),
    ] {
        let parsed = parse_signature(&p, input, &sig).unwrap();
        assert_eq!(parsed.verify(&key().verifying_key()), Ok(()), "{sig}");
    }
}

#[test]
fn sig1_is_preferred_among_several_signatures_else_the_first() {
    let h = headers(false);
    let p = parts("POST", &h);
    let params1 = r#"("@method" "@target-uri");keyid="k1";created=1700000000"#;
    let params2 = r#"("@method");keyid="k2";created=1700000001"#;
    let s1 = sign_raw(&p, &["@method", "@target-uri"], params1);
    let s2 = sign_raw(&p, &["@method"], params2);

    let input = format!("proxy={params2}, sig1={params1}");
    let sig = format!("proxy=:{s2}:, sig1=:{s1}:");
    let parsed = parse_signature(&p, &input, &sig).unwrap();
    assert_eq!(parsed.label(), "sig1");
    assert_eq!(parsed.keyid(), "k1");
    assert_eq!(parsed.signature_params(), params1);
    assert_eq!(parsed.verify(&key().verifying_key()), Ok(()));

    let input = format!("first={params2}, second={params1}");
    let sig = format!("second=:{s1}:, first=:{s2}:");
    let parsed = parse_signature(&p, &input, &sig).unwrap();
    assert_eq!(parsed.label(), "first");
    assert_eq!(parsed.keyid(), "k2");
    assert_eq!(parsed.verify(&key().verifying_key()), Ok(()));

    // Two header instances, as parse_request_signature joins them.
    let mut h2 = h.clone();
    h2.push(("signature-input".into(), format!("proxy={params2}")));
    h2.push(("signature-input".into(), format!("sig1={params1}")));
    h2.push(("signature".into(), format!("sig1=:{s1}:")));
    h2.push(("signature".into(), format!("proxy=:{s2}:")));
    let p2 = parts("POST", &h2);
    let parsed = parse_request_signature(&p2).unwrap();
    assert_eq!(parsed.label(), "sig1");
    assert_eq!(parsed.verify(&key().verifying_key()), Ok(()));
}

#[test]
fn created_window() {
    let h = headers(false);
    let p = parts("POST", &h);
    let k = key();
    let signed = sign_request(&p, &["@method", "@target-uri"], "k1", 1_700_000_000, &k).unwrap();
    let parsed = parse_signature(&p, &signed.signature_input, &signed.signature).unwrap();
    assert_eq!(parsed.check_created(1_700_000_000, 300), Ok(()));
    assert_eq!(parsed.check_created(1_700_000_300, 300), Ok(()));
    assert_eq!(parsed.check_created(1_699_999_700, 300), Ok(()));
    assert_eq!(
        parsed.check_created(1_700_000_301, 300),
        Err(SignatureError::CreatedTooOld {
            created: 1_700_000_000,
            now: 1_700_000_301,
            window_secs: 300
        })
    );
    assert_eq!(
        parsed.check_created(1_699_999_699, 300),
        Err(SignatureError::CreatedInFuture {
            created: 1_700_000_000,
            now: 1_699_999_699,
            window_secs: 300
        })
    );
    assert_eq!(
        parsed
            .check_created(1_700_000_301, 300)
            .unwrap_err()
            .to_string(),
        "signature created at 1700000000 is more than 300 s old (now 1700000301)"
    );

    // No created at all.
    let params = r#"("@method" "@target-uri");keyid="k1""#;
    let sig = sign_raw(&p, &["@method", "@target-uri"], params);
    let parsed = parse_signature(&p, &format!("sig1={params}"), &sig).unwrap();
    assert_eq!(parsed.created(), None);
    assert_eq!(parsed.verify(&k.verifying_key()), Ok(()));
    assert_eq!(
        parsed.check_created(1_700_000_000, 300),
        Err(SignatureError::CreatedMissing)
    );

    // Expired.
    let params = r#"("@method");keyid="k1";created=1700000000;expires=1700000010"#;
    let sig = sign_raw(&p, &["@method"], params);
    let parsed = parse_signature(&p, &format!("sig1={params}"), &sig).unwrap();
    assert_eq!(parsed.expires(), Some(1_700_000_010));
    assert_eq!(parsed.check_created(1_700_000_010, 300), Ok(()));
    assert_eq!(
        parsed.check_created(1_700_000_011, 300),
        Err(SignatureError::Expired {
            expires: 1_700_000_010,
            now: 1_700_000_011
        })
    );
}

#[test]
fn required_components() {
    let h = headers(true);
    let p = parts("POST", &h);
    let k = key();
    let check = |components: &[&str], body: bool, auth: bool| {
        let s = sign_request(&p, components, "k1", 1, &k).unwrap();
        parse_signature(&p, &s.signature_input, &s.signature)
            .unwrap()
            .check_required_components(body, auth)
    };
    let all = [
        "@method",
        "@target-uri",
        "authorization",
        "content-digest",
        "content-length",
        "content-type",
    ];
    assert_eq!(check(&all, true, true), Ok(()));
    assert_eq!(
        check(&["@target-uri", "authorization"], false, true),
        Err(SignatureError::MissingRequiredComponent("@method".into()))
    );
    assert_eq!(
        check(&["@method", "authorization"], false, true),
        Err(SignatureError::MissingRequiredComponent(
            "@target-uri".into()
        ))
    );
    assert_eq!(
        check(&["@method", "@target-uri"], false, true),
        Err(SignatureError::MissingRequiredComponent(
            "authorization".into()
        ))
    );
    assert_eq!(check(&["@method", "@target-uri"], false, false), Ok(()));
    assert_eq!(
        check(&["@method", "@target-uri", "authorization"], true, true),
        Err(SignatureError::MissingRequiredComponent(
            "content-digest".into()
        ))
    );
    assert_eq!(
        SignatureError::MissingRequiredComponent("content-digest".into()).to_string(),
        "signature does not cover required component content-digest"
    );
}

#[test]
fn sign_request_output_shape() {
    let h = headers(true);
    let p = parts("POST", &h);
    let s = sign_request(
        &p,
        &["@method", "@target-uri", "authorization", "content-digest"],
        "key \"one\"",
        123,
        &key(),
    )
    .unwrap();
    assert_eq!(
        s.signature_input,
        r#"sig1=("@method" "@target-uri" "authorization" "content-digest");keyid="key \"one\"";created=123"#
    );
    assert!(s.signature.starts_with("sig1=:") && s.signature.ends_with(':'));
    let parsed = parse_signature(&p, &s.signature_input, &s.signature).unwrap();
    assert_eq!(parsed.keyid(), "key \"one\"");
    assert_eq!(parsed.verify(&key().verifying_key()), Ok(()));

    assert_eq!(
        sign_request(&p, &["@method", "x-absent"], "k", 1, &key()).unwrap_err(),
        SignatureError::ComponentHeaderAbsent("x-absent".into())
    );
    assert_eq!(
        sign_request(&p, &["@status"], "k", 1, &key()).unwrap_err(),
        SignatureError::UnsupportedComponent("@status".into())
    );
    assert!(matches!(
        sign_request(&p, &["@method", "@method"], "k", 1, &key()),
        Err(SignatureError::InvalidParameter(_))
    ));
    assert!(matches!(
        sign_request(&p, &["Content-Type"], "k", 1, &key()),
        Err(SignatureError::InvalidParameter(_))
    ));
    assert!(matches!(
        sign_request(&p, &["@method"], "k\u{e9}", 1, &key()),
        Err(SignatureError::InvalidParameter(_))
    ));
}

#[test]
fn malformed_input_is_refused_with_clear_errors() {
    let h = headers(false);
    let p = parts("POST", &h);
    let good_sig = format!("sig1=:{}:", STANDARD.encode([0u8; 64]));
    let err = |input: &str, sig: &str| parse_signature(&p, input, sig).unwrap_err();

    assert_eq!(
        err("", &good_sig),
        SignatureError::MissingHeader("Signature-Input")
    );
    assert_eq!(
        err(r#"sig1=("@method");keyid="k";created=1"#, " "),
        SignatureError::MissingHeader("Signature")
    );
    assert_eq!(
        err(r#"sig1=("@method");keyid="k";created=1"#, " ").to_string(),
        "missing Signature header"
    );
    for bad in [
        "sig1",
        "sig1=(\"@method\"",
        "sig1=(\"@method\");created=abc",
        "sig1=(\"@method\");keyid=\"k\";created=\"1\"",
        "sig1=(\"@method\" \"@method\");keyid=\"k\"",
        "sig1=(\"Content-Type\");keyid=\"k\"",
        "sig1=(\"@signature-params\");keyid=\"k\"",
        "sig1=(\"@method\");keyid=\"k\";keyid=\"j\"",
        "sig1=(\"@method\");keyid=\"k\",",
        "sig1=:AAAA:",
    ] {
        assert!(
            matches!(
                err(bad, &good_sig),
                SignatureError::MalformedSignatureInput(_)
            ),
            "{bad}: {:?}",
            err(bad, &good_sig)
        );
    }
    assert_eq!(
        err(r#"sig1=("@method");created=1"#, &good_sig),
        SignatureError::MissingKeyId
    );
    assert_eq!(
        err(r#"sig1=("@status");keyid="k""#, &good_sig),
        SignatureError::UnsupportedComponent("@status".into())
    );
    assert!(matches!(
        err(r#"sig1=("content-digest";sf);keyid="k""#, &good_sig),
        SignatureError::UnsupportedComponent(_)
    ));
    assert_eq!(
        err(r#"sig1=("x-missing");keyid="k""#, &good_sig),
        SignatureError::ComponentHeaderAbsent("x-missing".into())
    );

    let input = r#"sig1=("@method");keyid="k";created=1"#;
    for bad in [
        "sig1=:AAAA:".to_string(),
        "sig2=:AAAA:".to_string(),
        format!("sig2=:{}:", STANDARD.encode([0u8; 64])),
        "sig1=\"AAAA\"".to_string(),
        "sig1=:not base64!:".to_string(),
        "not base64!".to_string(),
        STANDARD.encode([0u8; 63]),
    ] {
        assert!(
            matches!(err(input, &bad), SignatureError::MalformedSignature(_)),
            "{bad}: {:?}",
            err(input, &bad)
        );
    }
    assert_eq!(
        err(input, "sig1=:AAAA:").to_string(),
        "malformed Signature header: an ed25519 signature is 64 bytes, got 3"
    );

    // Well-formed but wrong.
    let parsed = parse_signature(&p, input, &good_sig).unwrap();
    assert_eq!(
        parsed.verify(&key().verifying_key()),
        Err(SignatureError::BadSignature)
    );
    assert_eq!(
        SignatureError::BadSignature.to_string(),
        "signature verification failed"
    );

    // Missing headers through the request view.
    assert_eq!(
        parse_request_signature(&p).unwrap_err(),
        SignatureError::MissingHeader("Signature-Input")
    );
}
