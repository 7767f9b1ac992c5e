// Regenerates crates/latchkey-proto/tests/vectors/node-http-signature-utils.json: requests signed
// by the official Open Payments Node package `@interledger/http-signature-utils` (the code the
// `@interledger/open-payments` client calls for every authenticated request).
//
//   cd interop/vectors && npm ci && node generate.mjs
//
// Every run makes a new key and new `created` times, so the file changes each time: regenerate
// only when the pinned package version changes, and commit the result.
//
// For each request the script also records the signature base, computed with the strict
// RFC 9421 code of `http-message-signatures` (the library the package signs with), and checks
// with Ed25519 that this base is exactly what was signed. The Rust tests compare their own base
// with it byte for byte.

import { readFileSync, writeFileSync } from 'node:fs';
import { createPublicKey, verify } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import {
  createHeaders,
  generateJwk,
  generateKey,
  validateSignature,
  validateSignatureHeaders,
} from '@interledger/http-signature-utils';
import { httpbis } from 'http-message-signatures';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const out = join(here, '../../crates/latchkey-proto/tests/vectors/node-http-signature-utils.json');
const pkg = JSON.parse(
  readFileSync(require.resolve('@interledger/http-signature-utils/package.json'), 'utf8'),
);

const kid = 'node-vector-key-1';
const privateKey = generateKey();
const jwk = generateJwk({ keyId: kid, privateKey });
const privateKeyPem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();

const auth = 'https://auth.example.test';
const token = 'GNAP OS9M2PMHKUR64TB8N6BW7OZB8CDFONP219RP1LT0';

// The calls an Open Payments client makes to an authorization server, plus one resource-server
// GET with a query string. Bodies are JSON.stringify output, as the Node client sends them.
const requests = [
  {
    name: 'grant-request: POST with JSON body, no Authorization',
    method: 'POST',
    url: `${auth}/`,
    headers: {},
    body: JSON.stringify({
      access_token: { access: [{ type: 'incoming-payment', actions: ['create', 'read'] }] },
      client: 'https://wallet.example.test/alice',
    }),
  },
  {
    name: 'grant-continue: POST with JSON body and Authorization',
    method: 'POST',
    url: `${auth}/continue/4CF492MLVMSW9MKMXKHQ`,
    headers: { Authorization: token },
    body: JSON.stringify({ interact_ref: '4IFWWIKYBC2PQ6U56NL1' }),
  },
  {
    name: 'token-rotate: POST without body, with Authorization',
    method: 'POST',
    url: `${auth}/token/8f69de01-5bf9-4603-91ed-eeca101081f1`,
    headers: { Authorization: token },
  },
  {
    name: 'token-revoke: DELETE with Authorization, no body',
    method: 'DELETE',
    url: `${auth}/token/8f69de01-5bf9-4603-91ed-eeca101081f1`,
    headers: { Authorization: token },
  },
  {
    name: 'grant-cancel: DELETE with Authorization, no body',
    method: 'DELETE',
    url: `${auth}/continue/4CF492MLVMSW9MKMXKHQ`,
    headers: { Authorization: token },
  },
  {
    name: 'POST without body and without Authorization',
    method: 'POST',
    url: `${auth}/`,
    headers: {},
  },
  {
    name: 'resource GET with a query string',
    method: 'GET',
    url: 'https://wallet.example.test/incoming-payments?wallet-address=https%3A%2F%2Fwallet.example.test%2Falice&first=10',
    headers: { Authorization: token },
  },
];

const publicKey = createPublicKey(privateKey);
const cases = [];
for (const r of requests) {
  const request = { method: r.method, url: r.url, headers: { ...r.headers } };
  if (r.body !== undefined) request.body = r.body;
  const signed = await createHeaders({ request, privateKey, keyId: kid });
  // createHeaders adds the content headers to request.headers; the signature headers come back.
  const all = { ...request.headers, ...signed };
  const headers = Object.entries(all).map(([k, v]) => [k.toLowerCase(), String(v)]);
  const lower = Object.fromEntries(headers);

  // The strict RFC 9421 base for the received Signature-Input.
  const sigInput = lower['signature-input'];
  const params = sigInput.slice(sigInput.indexOf('=') + 1);
  const fields = [...params.slice(1, params.indexOf(')')).matchAll(/"([^"]+)"/g)].map((m) => `"${m[1]}"`);
  const base = httpbis.createSignatureBase(
    { fields },
    { method: r.method, url: r.url, headers: lower },
  );
  base.push(['"@signature-params"', [params]]);
  const signatureBase = httpbis.formatSignatureBase(base);
  const sigB64 = lower['signature'].replace(/^sig1=:/, '').replace(/:$/, '');
  if (!verify(null, Buffer.from(signatureBase), publicKey, Buffer.from(sigB64, 'base64'))) {
    throw new Error(`${r.name}: the recomputed signature base is not what was signed`);
  }

  // What Rafiki's auth server runs on the received request.
  const received = { method: r.method, url: r.url, headers: lower, body: r.body };
  const valid = validateSignatureHeaders(received) && (await validateSignature(jwk, received));
  if (!valid) throw new Error(`${r.name}: validateSignature refused its own package's output`);

  cases.push({
    name: r.name,
    method: r.method,
    url: r.url,
    body: r.body ?? null,
    headers,
    signature_base: signatureBase,
  });
}

const doc = {
  description:
    'Requests signed with createHeaders() of @interledger/http-signature-utils; regenerate with interop/vectors/generate.mjs',
  package: pkg.name,
  version: pkg.version,
  node: process.version,
  generated_at: new Date().toISOString(),
  key: { kid, private_key_pem: privateKeyPem, jwk },
  cases,
};
writeFileSync(out, JSON.stringify(doc, null, 2) + '\n');
console.log(`wrote ${cases.length} cases to ${out}`);
