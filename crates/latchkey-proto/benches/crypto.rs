//! Criterion benchmarks of the per-request cryptography (DESIGN.md: "The work is dominated by
//! one Ed25519 verification (~50 µs), a SHA-256, and one small durable write"):
//! signing a request as a client, parsing and verifying a received signature as the server,
//! and the Content-Digest of a grant request body.
//!
//! `cargo bench -p latchkey-proto --bench crypto`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use latchkey_proto::digest::{content_digest_sha256, content_digest_sha512, verify_content_digest};
use latchkey_proto::httpsig::{
    components_for, parse_request_signature, sign_request, RequestParts,
};
use latchkey_proto::keys::generate_signing_key;

/// A grant request body of the usual size (an incoming-payment grant).
const GRANT_BODY: &[u8] = br#"{"access_token":{"access":[{"type":"incoming-payment","actions":["create","read","list"],"identifier":"https://wallet.example/alice"}]},"client":"https://wallet.example/alice"}"#;
const URL: &str = "https://auth.example/";
const CREATED: i64 = 1_700_000_000;

fn body_headers() -> Vec<(String, String)> {
    vec![
        ("content-digest".into(), content_digest_sha256(GRANT_BODY)),
        ("content-length".into(), GRANT_BODY.len().to_string()),
        ("content-type".into(), "application/json".into()),
    ]
}

fn signatures(c: &mut Criterion) {
    let key = generate_signing_key();
    let verifying = key.verifying_key();
    let mut headers = body_headers();
    let components = components_for(true, false);
    let parts = RequestParts {
        method: "POST",
        target_uri: URL,
        headers: &headers,
    };
    c.bench_function("httpsig/sign_request (grant, 5 components)", |b| {
        b.iter(|| {
            sign_request(
                black_box(&parts),
                &components,
                "key-1",
                CREATED,
                black_box(&key),
            )
        })
    });
    let signed = sign_request(&parts, &components, "key-1", CREATED, &key).expect("sign");
    headers.push(("signature-input".into(), signed.signature_input));
    headers.push(("signature".into(), signed.signature));
    let parts = RequestParts {
        method: "POST",
        target_uri: URL,
        headers: &headers,
    };
    c.bench_function("httpsig/parse_request_signature", |b| {
        b.iter(|| parse_request_signature(black_box(&parts)))
    });
    let parsed = parse_request_signature(&parts).expect("parse");
    c.bench_function("httpsig/verify (Ed25519 only)", |b| {
        b.iter(|| parsed.verify(black_box(&verifying)))
    });
    c.bench_function("httpsig/parse + verify (server side, whole)", |b| {
        b.iter(|| {
            let parsed = parse_request_signature(black_box(&parts)).expect("parse");
            parsed.verify(&verifying)
        })
    });
}

fn digests(c: &mut Criterion) {
    let mut group = c.benchmark_group("content-digest");
    group.throughput(Throughput::Bytes(GRANT_BODY.len() as u64));
    group.bench_function("sha-256 create (grant body)", |b| {
        b.iter(|| content_digest_sha256(black_box(GRANT_BODY)))
    });
    group.bench_function("sha-512 create (grant body)", |b| {
        b.iter(|| content_digest_sha512(black_box(GRANT_BODY)))
    });
    let header = content_digest_sha512(GRANT_BODY);
    group.bench_function("sha-512 verify (what the Node client sends)", |b| {
        b.iter(|| verify_content_digest(black_box(&header), black_box(GRANT_BODY)))
    });
    group.finish();
}

criterion_group!(benches, signatures, digests);
criterion_main!(benches);
