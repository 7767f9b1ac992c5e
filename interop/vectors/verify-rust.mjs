// Checks signed request vectors with the official Node code.
//
//   node verify-rust.mjs [--strict] FILE...
//
// FILE is a vector file as written by crates/latchkey-proto/tests/httpsig_interop.rs
// (`latchkey_signed_vectors`, with LATCHKEY_SIGNED_VECTORS_OUT set) or by the generators here:
// `{ key: { kid, jwk }, cases: [{ name, method, url, body, headers: [[name, value]] }] }`.
//
// Every case must pass `validateSignatureHeaders` + `validateSignature` of
// @interledger/http-signature-utils (what Rafiki's auth server runs). With --strict, every case
// must also pass `httpbis.verifyMessage` of http-message-signatures, a strict RFC 9421 verifier
// (the Rust SDK 0.2 dialect is not strict RFC 9421, so its file is checked without --strict).
// Exits non-zero on the first failure.

import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { validateSignature, validateSignatureHeaders } from '@interledger/http-signature-utils';
import { httpbis, createVerifier } from 'http-message-signatures';

const args = process.argv.slice(2);
const strict = args.includes('--strict');
const files = args.filter((a) => a !== '--strict');
if (files.length === 0) {
  console.error('usage: node verify-rust.mjs [--strict] FILE...');
  process.exit(2);
}

let failures = 0;
let checked = 0;
for (const file of files) {
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  const jwk = doc.key.jwk;
  const publicKey = createPublicKey({ key: jwk, format: 'jwk' });
  for (const c of doc.cases) {
    const headers = Object.fromEntries(c.headers.map(([k, v]) => [k.toLowerCase(), v]));
    const request = { method: c.method, url: c.url, headers };
    if (c.body !== null && c.body !== undefined) request.body = c.body;

    const problems = [];
    if (!validateSignatureHeaders(request)) problems.push('validateSignatureHeaders refused it');
    if (!(await validateSignature(jwk, request))) problems.push('validateSignature refused it');
    if (strict) {
      try {
        const ok = await httpbis.verifyMessage(
          {
            keyLookup: async (params) =>
              params.keyid === doc.key.kid
                ? { id: doc.key.kid, algs: ['ed25519'], verify: createVerifier(publicKey, 'ed25519') }
                : null,
            requiredFields: ['@method', '@target-uri'],
            requiredParams: ['keyid', 'created'],
          },
          request,
        );
        if (ok !== true) problems.push(`httpbis.verifyMessage returned ${ok}`);
      } catch (e) {
        problems.push(`httpbis.verifyMessage threw ${e}`);
      }
    }
    checked += 1;
    if (problems.length > 0) {
      failures += 1;
      console.error(`FAIL ${file}: ${c.name}: ${problems.join('; ')}`);
    } else {
      console.log(`ok   ${c.name}`);
    }
  }
}
console.log(`${checked - failures}/${checked} signed requests accepted by the Node verifier`);
process.exit(failures === 0 ? 0 : 1);
