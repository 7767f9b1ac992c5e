// Verifies requests signed by the latchkey-client SDK (as captured on the wire by
// crates/latchkey-client/tests/sdk_signatures.rs) with code nobody here wrote:
//
//  * @interledger/http-signature-utils 2.0.3: validateSignatureHeaders + validateSignature, the
//    checks Rafiki's auth server runs (covered components, Content-Digest over the body, Ed25519);
//  * http-message-signatures 1.0.6: httpbis.verifyMessage, a strict RFC 9421 verifier.
//
//   node verify.mjs FILE
//
// FILE: { key: { kid, jwk }, cases: [{ name, method, url, body, headers: [[name, value]] }] }.
// Exits non-zero if any case is refused, or if the file holds no case.

import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { validateSignature, validateSignatureHeaders } from '@interledger/http-signature-utils';
import { httpbis, createVerifier } from 'http-message-signatures';

const file = process.argv[2];
if (!file) {
  console.error('usage: node verify.mjs FILE');
  process.exit(2);
}
const doc = JSON.parse(readFileSync(file, 'utf8'));
const { kid, jwk } = doc.key;
const publicKey = createPublicKey({ key: jwk, format: 'jwk' });

let refused = 0;
for (const c of doc.cases) {
  const headers = {};
  for (const [name, value] of c.headers) headers[name.toLowerCase()] = value;
  const request = { method: c.method, url: c.url, headers };
  if (c.body !== null && c.body !== undefined) request.body = c.body;

  const problems = [];
  if (!validateSignatureHeaders(request)) problems.push('validateSignatureHeaders: false');
  if (!(await validateSignature(jwk, request))) problems.push('validateSignature: false');
  try {
    const verified = await httpbis.verifyMessage(
      {
        keyLookup: async (params) =>
          params.keyid === kid
            ? { id: kid, algs: ['ed25519'], verify: createVerifier(publicKey, 'ed25519') }
            : null,
        requiredFields: ['@method', '@target-uri'],
        requiredParams: ['keyid', 'created'],
      },
      request,
    );
    if (verified !== true) problems.push(`httpbis.verifyMessage: ${verified}`);
  } catch (e) {
    problems.push(`httpbis.verifyMessage threw: ${e}`);
  }
  // A tampered copy must fail, or the checks above prove nothing.
  const tampered = { ...request, url: request.url + (request.url.includes('?') ? '&' : '?') + 'x=1' };
  if (await validateSignature(jwk, tampered)) problems.push('a tampered URL still verified');

  if (problems.length > 0) {
    refused += 1;
    console.error(`FAIL ${c.name}: ${problems.join('; ')}`);
  } else {
    console.log(`ok   ${c.name}`);
  }
}
console.log(`${doc.cases.length - refused}/${doc.cases.length} SDK-signed requests verified`);
process.exit(refused === 0 && doc.cases.length > 0 ? 0 : 1);
