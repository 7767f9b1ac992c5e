// Interactive grants without a browser: what a user's browser and an identity provider do, in fetch.
//
// - `BrowserSession`: follows the front channel by hand (interaction start, the sandbox consent page
//   and its form, the finish redirect), keeping cookies like a browser and never following a
//   redirect to the client's finish URI (the test reads the Location header instead).
// - `IdentityProvider`: the back-channel API on the private listener, every answer checked against
//   the shapes and statuses of Rafiki's id-provider.yaml.
// - `interactionHash` / `finishParams`: what the client checks when the browser comes back.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';

/** A fresh client nonce (the client's half of the interaction hash). */
export const clientNonce = () => crypto.randomBytes(18).toString('base64url');

/**
 * RFC 9635 §4.2.3 as the Open Payments clients check it: base64 (standard, padded) of
 * SHA-256("{client nonce}\n{server nonce = interact.finish}\n{interact_ref}\n{grant endpoint URL}").
 */
export function interactionHash(clientNonceValue, serverNonce, interactRef, grantEndpoint) {
  return crypto
    .createHash('sha256')
    .update(`${clientNonceValue}\n${serverNonce}\n${interactRef}\n${grantEndpoint}`)
    .digest('base64');
}

/** `{id, nonce}` of an interaction: the last two path segments of `interact.redirect`. */
export function interactionIds(redirect) {
  const parts = new URL(redirect).pathname.split('/').filter(Boolean);
  assert.equal(parts.length, 3, `interact.redirect is /interact/{id}/{nonce}: ${redirect}`);
  assert.equal(parts[0], 'interact', `interact.redirect is /interact/{id}/{nonce}: ${redirect}`);
  return { id: parts[1], nonce: parts[2] };
}

/**
 * Check the browser's trip back to the client: `location` must be the finish URI the client gave
 * (its own query kept) plus `hash` and `interact_ref`; the hash must verify. Returns interact_ref.
 */
export function verifyFinishRedirect({ location, finishUri, nonce, grant, grantEndpoint }) {
  const back = new URL(location);
  const sent = new URL(finishUri);
  assert.equal(back.origin + back.pathname, sent.origin + sent.pathname, `redirect goes to the finish URI: ${location}`);
  for (const [k, v] of sent.searchParams) {
    assert.equal(back.searchParams.get(k), v, `the finish URI's own query parameter ${k} is kept: ${location}`);
  }
  const interactRef = back.searchParams.get('interact_ref');
  const hash = back.searchParams.get('hash');
  assert.ok(interactRef, `interact_ref in ${location}`);
  assert.ok(hash, `hash in ${location}`);
  assert.equal(back.searchParams.get('result'), null, `no result parameter on approval: ${location}`);
  assert.equal(
    hash,
    interactionHash(nonce, grant.interact.finish, interactRef, grantEndpoint),
    `hash = base64(SHA-256(nonce \\n interact.finish \\n interact_ref \\n ${grantEndpoint}))`
  );
  return interactRef;
}

/** A cookie-keeping, JavaScript-less browser that shows each redirect instead of following it. */
export class BrowserSession {
  constructor() {
    this.cookies = new Map();
  }

  #absorb(res) {
    for (const set of res.headers.getSetCookie()) {
      const [pair, ...attrs] = set.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a));
      if (!value || expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async #send(url, init = {}) {
    const headers = { ...(init.headers ?? {}) };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.#absorb(res);
    const body = await res.text();
    const location = res.headers.get('location');
    return {
      status: res.status,
      headers: res.headers,
      location: location ? new URL(location, url).href : null,
      body
    };
  }

  get(url) {
    return this.#send(url, { method: 'GET', headers: { accept: 'text/html' } });
  }

  postForm(url, fields) {
    return this.#send(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
      body: new URLSearchParams(fields).toString()
    });
  }

  /** GET interact.redirect: 302 to the consent page with a session cookie. Returns the consent URL. */
  async start(redirect) {
    const res = await this.get(redirect);
    assert.equal(res.status, 302, `interaction start answers 302: ${res.status} ${res.body}`);
    assert.ok(res.location, 'interaction start sends the browser somewhere');
    assert.ok(this.cookies.size > 0, 'interaction start sets a session cookie');
    return res.location;
  }

  /**
   * The sandbox consent page: start, read the page, submit `decision` ('accept' | 'deny') with its
   * CSRF field, follow the 303 to the finish endpoint. Returns {page, finish} where finish is the
   * finish endpoint's answer (302 to the client).
   */
  async consent(redirect, decision, { expectOnPage = [] } = {}) {
    const consentUrl = await this.start(redirect);
    const page = await this.get(consentUrl);
    assert.equal(page.status, 200, `consent page: ${page.status} ${page.body}`);
    for (const text of expectOnPage) {
      assert.ok(page.body.includes(text), `consent page shows ${JSON.stringify(text)}:\n${page.body}`);
    }
    const form = /<form[^>]*\baction="([^"]+)"/.exec(page.body);
    const csrf = /name="csrf"\s+value="([^"]*)"/.exec(page.body);
    assert.ok(form && csrf, `consent page has a form with a csrf field:\n${page.body}`);
    const decided = await this.postForm(new URL(form[1], consentUrl).href, { csrf: csrf[1], decision });
    assert.equal(decided.status, 303, `consent decision answers 303: ${decided.status} ${decided.body}`);
    const finish = await this.get(decided.location);
    return { page, finish };
  }

  /** GET the finish endpoint ({interact.redirect}/finish) with this browser's cookies. */
  finish(redirect) {
    return this.get(`${redirect}/finish`);
  }
}

/**
 * The answer shapes id-provider.yaml (Rafiki's IdP <-> AS API) gives, checked by hand:
 * GET 200 {grantId: string, access: [...], state: PENDING|APPROVED|DENIED}; errors
 * {error: {code, description}} with the code the spec lists for the status.
 */
const ERROR_CODES = {
  GET: { 401: ['invalid_request'], 404: ['unknown_interaction'] },
  POST: { 400: ['invalid_interaction', 'invalid_request'], 401: ['invalid_interaction', 'user_denied'], 404: ['unknown_interaction'] }
};

function checkShape(method, status, body, what) {
  const show = `${what} answered ${status}: ${JSON.stringify(body)}`;
  if (method === 'GET' && status === 200) {
    assert.equal(typeof body?.grantId, 'string', `grantId: ${show}`);
    assert.ok(Array.isArray(body.access) && body.access.length >= 1 && body.access.length <= 3, `access: ${show}`);
    assert.ok(['PENDING', 'APPROVED', 'DENIED'].includes(body.state), `state: ${show}`);
    return;
  }
  if (method === 'POST' && status === 202) return;
  const codes = ERROR_CODES[method][status];
  assert.ok(codes, `status not listed in id-provider.yaml: ${show}`);
  assert.ok(codes.includes(body?.error?.code), `error code should be one of ${codes}: ${show}`);
  assert.equal(typeof body.error.description, 'string', `error description: ${show}`);
}

/** The identity-provider back channel: `GET /grant/{id}/{nonce}`, `POST .../accept|reject`. */
export class IdentityProvider {
  constructor(privateUrl, secret) {
    this.privateUrl = privateUrl;
    this.secret = secret;
  }

  async #call(method, suffix, { secret = this.secret } = {}) {
    const headers = { accept: 'application/json' };
    if (secret !== null) headers['x-idp-secret'] = secret;
    const res = await fetch(`${this.privateUrl}/grant/${suffix}`, { method, headers });
    const text = await res.text();
    let body;
    try { body = text ? JSON.parse(text) : undefined; } catch { body = text; }
    return { status: res.status, body };
  }

  /** Look up the grant behind an interaction. Returns {status, body}; the shape is checked. */
  async lookup({ id, nonce }, opts) {
    const res = await this.#call('GET', `${id}/${nonce}`, opts);
    checkShape('GET', res.status, res.body, 'GET /grant/{id}/{nonce}');
    return res;
  }

  /** Record the resource owner's choice ('accept' | 'reject'). Returns {status, body}. */
  async choose({ id, nonce }, choice, opts) {
    const res = await this.#call('POST', `${id}/${nonce}/${choice}`, opts);
    checkShape('POST', res.status, res.body, `POST /grant/{id}/{nonce}/${choice}`);
    return res;
  }
}
