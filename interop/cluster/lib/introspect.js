// GNAP token introspection on one node's private listener, as a resource server does it:
// POST {PRIVATE_URL}/ {"access_token": ...}. (There is no official npm introspection client;
// interop/open-payments/NOTES.md explains why, and validates the answer's full shape. Here the
// point is agreement between nodes, so the shape is checked only as far as the tests rely on.)

import assert from 'node:assert/strict';

export async function introspect(privateUrl, accessToken) {
  const res = await fetch(`${privateUrl}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ access_token: accessToken })
  });
  const text = await res.text();
  assert.equal(res.status, 200, `introspection at ${privateUrl} answered ${res.status}: ${text}`);
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`introspection at ${privateUrl}: not JSON: ${text}`);
  }
  assert.equal(typeof body.active, 'boolean', `introspection at ${privateUrl}: no boolean "active" in ${text}`);
  if (!body.active) {
    assert.deepEqual(body, { active: false }, `introspection at ${privateUrl}: an inactive answer is exactly {active:false}`);
  }
  return body;
}
