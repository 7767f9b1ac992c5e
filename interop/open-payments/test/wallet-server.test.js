// Self-test of the harness's wallet-address server; needs no latchkey binary.
// The official client must accept our wallet address and JWKS documents, and a request the official
// client signs must verify (with Rafiki's own verifier) against the key our JWKS publishes.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { createUnauthenticatedClient } from '@interledger/open-payments';
import { validateSignature, validateSignatureHeaders } from '@interledger/http-signature-utils';
import { makeKey, startWalletServer } from '../lib/wallet.js';
import { makeClient, ok } from '../lib/helpers.js';

describe('harness wallet-address server', () => {
  let wallets, fakeAs, fakeAsUrl, aliceKey, aliceUrl;
  const seen = [];

  before(async () => {
    // A stand-in authorization server that records what the official client sends.
    fakeAs = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        seen.push({ method: req.method, url: `${fakeAsUrl}${req.url}`, headers: req.headers, body: Buffer.concat(chunks).toString() });
        const body = JSON.stringify({
          access_token: {
            value: 'v'.repeat(43),
            manage: `${fakeAsUrl}/token/abc`,
            expires_in: 600,
            access: [{ type: 'incoming-payment', actions: ['create'], identifier: aliceUrl }]
          },
          continue: { access_token: { value: 'c'.repeat(43) }, uri: `${fakeAsUrl}/continue/abc` }
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      });
    });
    await new Promise((r) => fakeAs.listen(0, '127.0.0.1', r));
    fakeAsUrl = `http://127.0.0.1:${fakeAs.address().port}`;

    wallets = await startWalletServer();
    aliceKey = makeKey('alice-key-1');
    aliceUrl = wallets.addWallet('alice', { keys: [aliceKey], publicName: 'Alice' });
    wallets.setAuthServer(fakeAsUrl);
  });

  after(async () => {
    await wallets.close();
    fakeAs.closeAllConnections?.();
    await new Promise((r) => fakeAs.close(r));
  });

  it('wallet address and jwks.json pass the official client\'s response validation', async () => {
    const client = await createUnauthenticatedClient({ validateResponses: true });
    const wa = await ok('walletAddress.get', client.walletAddress.get({ url: aliceUrl }));
    assert.deepEqual(wa, {
      id: aliceUrl,
      publicName: 'Alice',
      assetCode: 'USD',
      assetScale: 2,
      authServer: fakeAsUrl,
      resourceServer: `${wallets.baseUrl}/rs`
    });
    const jwks = await ok('walletAddress.getKeys', client.walletAddress.getKeys({ url: aliceUrl }));
    assert.deepEqual(jwks, { keys: [aliceKey.jwk] });
    assert.deepEqual(Object.keys(aliceKey.jwk).sort(), ['alg', 'crv', 'kid', 'kty', 'x']);
    assert.equal(aliceKey.jwk.kty, 'OKP');
    assert.equal(aliceKey.jwk.crv, 'Ed25519');
    assert.equal(aliceKey.jwk.alg, 'EdDSA');
  });

  it('unknown wallets are 404', async () => {
    assert.equal((await fetch(`${wallets.baseUrl}/nobody`)).status, 404);
    assert.equal((await fetch(`${wallets.baseUrl}/nobody/jwks.json`)).status, 404);
  });

  it('requests signed by the official client verify against the published key', async () => {
    const alice = await makeClient(aliceUrl, aliceKey);
    const grant = await ok('grant.request to the stand-in AS', alice.grant.request({ url: fakeAsUrl }, {
      access_token: { access: [{ type: 'incoming-payment', actions: ['create'], identifier: aliceUrl }] }
    }));
    await ok('token.rotate to the stand-in AS', alice.token.rotate({ url: grant.access_token.manage, accessToken: grant.access_token.value }));

    const { keys } = await (await fetch(`${aliceUrl}/jwks.json`)).json();
    assert.equal(seen.length, 2);
    for (const req of seen) {
      const request = { method: req.method, url: req.url, headers: req.headers, body: req.body || undefined };
      assert.ok(validateSignatureHeaders(request), `signature headers of ${req.method} ${req.url}`);
      assert.equal(await validateSignature(keys[0], request), true, `signature of ${req.method} ${req.url}`);
      const other = makeKey('alice-key-1');
      assert.equal(await validateSignature(other.jwk, request), false, 'a different key must not verify');
    }
    assert.equal(seen[0].headers.authorization, undefined, 'grant request carries no Authorization');
    assert.equal(seen[1].headers.authorization, `GNAP ${grant.access_token.value}`, 'rotate carries GNAP token');
    assert.equal(JSON.parse(seen[0].body).client, aliceUrl, 'grant request names the client by wallet address string');
  });
});
