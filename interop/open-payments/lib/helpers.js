import assert from 'node:assert/strict';
import { createAuthenticatedClient, OpenPaymentsClientError } from '@interledger/open-payments';
import { createHeaders } from '@interledger/http-signature-utils';

/** The official client, signing as `walletAddressUrl` with `key` (from wallet.makeKey). */
export function makeClient(walletAddressUrl, key) {
  return createAuthenticatedClient({
    walletAddressUrl,
    privateKey: key.privateKey,
    keyId: key.keyId,
    validateResponses: true
  });
}

function explain(e) {
  if (!(e instanceof OpenPaymentsClientError)) return e?.stack ?? String(e);
  return JSON.stringify({
    message: e.message,
    status: e.status,
    code: e.code,
    description: e.description,
    validationErrors: e.validationErrors
  });
}

/** Await a client call that must succeed; on failure say why in terms of the server's answer. */
export async function ok(what, promise) {
  try {
    return await promise;
  } catch (e) {
    throw new assert.AssertionError({ message: `${what} failed: ${explain(e)}` });
  }
}

/**
 * Await a client call that must be refused with a 4xx answer. Returns the OpenPaymentsClientError.
 * A 2xx that fails the client's response validation, a 5xx or a network error all fail the check.
 */
export async function refused(what, promise) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: expected a refusal but the call succeeded`);
  assert.ok(err instanceof OpenPaymentsClientError, `${what}: unexpected error ${explain(err)}`);
  assert.ok(
    Number.isInteger(err.status) && err.status >= 400 && err.status < 500,
    `${what}: expected a 4xx refusal, got ${explain(err)}`
  );
  return err;
}

/** Access arrays compared with `actions` order ignored (the server may reorder them). */
export function normalizeAccess(access) {
  return [...access]
    .map((a) => ({ ...a, ...(a.actions ? { actions: [...a.actions].sort() } : {}) }))
    .sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
}

export function assertAccessEqual(actual, expected, what) {
  assert.ok(Array.isArray(actual), `${what}: access is not an array: ${JSON.stringify(actual)}`);
  assert.deepEqual(normalizeAccess(actual), normalizeAccess(expected), `${what}: access differs`);
}

/**
 * Sign and send a request the way the official client does (createHeaders from
 * @interledger/http-signature-utils), with an optional hook to tamper with the body
 * after signing. Returns {status, body}.
 */
export async function signedFetch({ method, url: rawUrl, body, accessToken, key, tamperBody }) {
  // Sign the normalized URL, as the official client does (it signs `new Request(url).url`,
  // so `http://host:port` is signed as `http://host:port/`).
  const url = new URL(rawUrl).href;
  const headers = { accept: 'application/json', 'content-type': 'application/json' };
  if (accessToken) headers.authorization = `GNAP ${accessToken}`;
  const text = body === undefined ? undefined : JSON.stringify(body);
  const signed = await createHeaders({
    request: { method, url, headers, body: text },
    privateKey: key.privateKey,
    keyId: key.keyId
  });
  const sent = tamperBody ? tamperBody(text) : text;
  const res = await fetch(url, {
    method,
    headers: {
      ...headers,
      ...(text !== undefined
        ? { 'content-digest': signed['Content-Digest'], 'content-type': signed['Content-Type'] }
        : {}),
      signature: signed.Signature,
      'signature-input': signed['Signature-Input']
    },
    body: sent
  });
  const raw = await res.text();
  let json;
  try { json = raw ? JSON.parse(raw) : undefined; } catch { json = raw; }
  return { status: res.status, body: json };
}

/** A non-trivial, URL-safe, high-entropy token value (DESIGN: >= 256 bits, opaque, URL-safe). */
export function assertTokenValue(value, what) {
  assert.equal(typeof value, 'string', `${what}: token value is not a string`);
  assert.match(value, /^[A-Za-z0-9._~-]{43,}$/, `${what}: token value ${JSON.stringify(value)} is not URL-safe or shorter than 256 bits in base64url`);
}
