// GNAP / Open Payments flows against the real latchkey binary, driven by the official
// @interledger/open-payments client (which signs every call and validates every answer
// against the Open Payments OpenAPI specs).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeKey, startWalletServer } from '../lib/wallet.js';
import { readAllFiles, saveLog, startLatchkey, tempDatabase } from '../lib/latchkey.js';
import { introspect } from '../lib/introspect.js';
import {
  assertAccessEqual,
  assertTokenValue,
  makeClient,
  ok,
  refused,
  signedFetch
} from '../lib/helpers.js';

const T = { timeout: 20000 };

/** Every token value the server hands out, to check none of them is stored or logged in plaintext. */
const issued = new Set();
function record(res) {
  if (res?.access_token?.value) issued.add(res.access_token.value);
  if (res?.continue?.access_token?.value) issued.add(res.continue.access_token.value);
}
function track(client) {
  const request = client.grant.request;
  client.grant.request = async (...args) => { const r = await request(...args); record(r); return r; };
  const rotate = client.token.rotate;
  client.token.rotate = async (...args) => { const r = await rotate(...args); record(r); return r; };
  return client;
}

describe('latchkey + @interledger/open-payments', { timeout: 60000 }, () => {
  let wallets, server, db;
  let aliceKey, bobKey;
  let aliceUrl, bobUrl;
  let alice, bob; // official clients
  let aliceWA; // wallet address document as the client resolved it

  const incomingAccess = () => [
    { type: 'incoming-payment', actions: ['create', 'read', 'list'], identifier: aliceUrl }
  ];
  const quoteAccess = () => [{ type: 'quote', actions: ['create', 'read'] }];

  /** Request an incoming-payment grant for alice through the official client. */
  const aliceGrant = (what = 'incoming-payment grant request', access = incomingAccess()) =>
    ok(what, alice.grant.request({ url: aliceWA.authServer }, { access_token: { access } }));

  const active = async (token, what) => {
    const r = await introspect(server.privateUrl, token);
    assert.equal(r.active, true, `${what}: expected active token, introspection says ${JSON.stringify(r)}`);
    return r;
  };
  const inactive = async (token, what) => {
    const r = await introspect(server.privateUrl, token);
    assert.deepEqual(r, { active: false }, `${what}: expected {active:false}, introspection says ${JSON.stringify(r)}`);
  };

  before(async () => {
    wallets = await startWalletServer();
    aliceKey = makeKey('alice-key-1');
    bobKey = makeKey('bob-key-1');
    aliceUrl = wallets.addWallet('alice', { keys: [aliceKey], publicName: 'Alice' });
    bobUrl = wallets.addWallet('bob', { keys: [bobKey], publicName: 'Bob' });
    db = tempDatabase();
    server = await startLatchkey({ database: db.url, workDir: db.dir });
    wallets.setAuthServer(server.publicUrl);
    alice = track(await makeClient(aliceUrl, aliceKey));
    bob = track(await makeClient(bobUrl, bobKey));
    aliceWA = await ok('walletAddress.get(alice)', alice.walletAddress.get({ url: aliceUrl }));
  });

  after(async () => {
    if (server) {
      await server.stop();
      saveLog('gnap', server.stderr());
    }
    if (wallets) await wallets.close();
    if (db) db.cleanup();
  });

  describe('grant request', () => {
    it('incoming-payment grant: access token and continuation in the documented shape', T, async () => {
      const grant = await aliceGrant();
      assert.equal(grant.interact, undefined, 'incoming-payment grants are non-interactive');
      const at = grant.access_token;
      assert.ok(at, `no access_token in ${JSON.stringify(grant)}`);
      assertTokenValue(at.value, 'access_token.value');
      assert.ok(at.manage.startsWith(`${server.publicUrl}/token/`), `manage ${at.manage} is not {PUBLIC_URL}/token/{id}`);
      assert.ok(new URL(at.manage).pathname.length > '/token/'.length + 8, 'manage id too short');
      assert.ok(!at.manage.includes(at.value), 'manage URL must not contain the token value');
      assert.ok(Number.isInteger(at.expires_in) && at.expires_in > 0, `expires_in ${at.expires_in}`);
      assertAccessEqual(at.access, incomingAccess(), 'access_token.access');

      const cont = grant.continue;
      assert.ok(cont?.access_token?.value, 'continue.access_token.value');
      assert.notEqual(cont.access_token.value, at.value, 'continuation token must differ from access token');
      assert.ok(cont.uri.startsWith(`${server.publicUrl}/continue/`), `continue.uri ${cont.uri}`);

      assert.ok(wallets.fetchesOf('/alice/jwks.json').length >= 1, 'server never fetched {alice}/jwks.json');
    });

    it('quote grant', T, async () => {
      const grant = await aliceGrant('quote grant request', quoteAccess());
      assertTokenValue(grant.access_token.value, 'quote access_token.value');
      assert.ok(grant.access_token.manage.startsWith(`${server.publicUrl}/token/`));
      assertAccessEqual(grant.access_token.access, quoteAccess(), 'quote access');
      assert.ok(grant.continue.uri.startsWith(`${server.publicUrl}/continue/`));
      const r = await active(grant.access_token.value, 'quote token');
      assertAccessEqual(r.access, quoteAccess(), 'introspected quote access');
    });

    it('client as {walletAddress} and as {jwk} (the client\'s clientOverride argument)', T, async () => {
      const viaObject = await ok('grant with client {walletAddress}', alice.grant.request(
        { url: aliceWA.authServer }, { access_token: { access: incomingAccess() } }, { walletAddress: aliceUrl }));
      const r1 = await active(viaObject.access_token.value, '{walletAddress} grant token');
      assert.deepEqual(r1.client, { walletAddress: aliceUrl });

      // Directed identity: the key itself, no wallet address lookup needed (non-interactive grants only).
      const viaJwk = await ok('grant with client {jwk}', alice.grant.request(
        { url: aliceWA.authServer }, { access_token: { access: incomingAccess() } }, { jwk: aliceKey.jwk }));
      const r2 = await active(viaJwk.access_token.value, '{jwk} grant token');
      assert.equal(r2.client?.jwk?.x, aliceKey.jwk.x, `introspected client ${JSON.stringify(r2.client)}`);
      assert.equal(r2.client.jwk.kid, aliceKey.jwk.kid);
      assert.equal(r2.client.walletAddress, undefined);
      const rotated = await ok('rotate a {jwk} grant token', alice.token.rotate({ url: viaJwk.access_token.manage, accessToken: viaJwk.access_token.value }));
      await ok('revoke a {jwk} grant token', alice.token.revoke({ url: rotated.access_token.manage, accessToken: rotated.access_token.value }));
      await inactive(rotated.access_token.value, 'revoked {jwk} grant token');

      // A {jwk} request must be signed by that very key.
      const impostor = await makeClient(aliceUrl, makeKey(aliceKey.keyId));
      await refused('{jwk} grant signed by another key', impostor.grant.request(
        { url: aliceWA.authServer }, { access_token: { access: incomingAccess() } }, { jwk: aliceKey.jwk }));
    });

    it('every grant gets its own token, manage URL and continue URI', T, async () => {
      const [a, b] = [await aliceGrant(), await aliceGrant()];
      assert.notEqual(a.access_token.value, b.access_token.value);
      assert.notEqual(a.access_token.manage, b.access_token.manage);
      assert.notEqual(a.continue.uri, b.continue.uri);
      assert.notEqual(a.continue.access_token.value, b.continue.access_token.value);
    });
  });

  describe('introspection', () => {
    it('active token: grant, access and client match the grant', T, async () => {
      const grant = await aliceGrant();
      const r = await active(grant.access_token.value, 'fresh token');
      assert.equal(typeof r.grant, 'string');
      assert.ok(r.grant.length > 0);
      assertAccessEqual(r.access, incomingAccess(), 'introspected access');
      assert.deepEqual(r.client, { walletAddress: aliceUrl }, 'introspected client');

      const withAccess = await introspect(server.privateUrl, grant.access_token.value, [
        { type: 'incoming-payment', actions: ['read'], identifier: aliceUrl }
      ]);
      assert.equal(withAccess.active, true, `introspection with a covered access item: ${JSON.stringify(withAccess)}`);
      assert.equal(withAccess.grant, r.grant);
      assert.ok(withAccess.access.every((a) => a.type === 'incoming-payment'), JSON.stringify(withAccess.access));
    });

    it('unknown token and continuation token are inactive', T, async () => {
      await inactive('x'.repeat(43), 'unknown token');
      const grant = await aliceGrant();
      await inactive(grant.continue.access_token.value, 'continuation token used as access token');
    });
  });

  describe('token rotation', () => {
    it('rotate gives a new value and manage URL; the old token is dead; rotating it again is refused', T, async () => {
      const grant = await aliceGrant();
      const old = grant.access_token;
      const before = await active(old.value, 'before rotation');

      const rotated = await ok('token.rotate', alice.token.rotate({ url: old.manage, accessToken: old.value }));
      const nu = rotated.access_token;
      assertTokenValue(nu.value, 'rotated value');
      assert.notEqual(nu.value, old.value, 'rotation must give a new value');
      assert.notEqual(nu.manage, old.manage, 'rotation must give a new manage URL');
      assert.ok(nu.manage.startsWith(`${server.publicUrl}/token/`), nu.manage);
      assert.ok(Number.isInteger(nu.expires_in) && nu.expires_in > 0, `expires_in ${nu.expires_in}`);
      assertAccessEqual(nu.access, incomingAccess(), 'rotated access');

      await inactive(old.value, 'rotated-away token');
      const after = await active(nu.value, 'successor');
      assert.equal(after.grant, before.grant, 'successor belongs to the same grant');
      assertAccessEqual(after.access, incomingAccess(), 'successor access');

      await refused('rotate the rotated-away token again', alice.token.rotate({ url: old.manage, accessToken: old.value }));
      await refused('rotate the old token at the new manage URL', alice.token.rotate({ url: nu.manage, accessToken: old.value }));
      await active(nu.value, 'successor after refused re-rotations');
      await inactive(old.value, 'rotated-away token after refused re-rotations');

      // The successor itself rotates normally.
      const third = await ok('rotate the successor', alice.token.rotate({ url: nu.manage, accessToken: nu.value }));
      await inactive(nu.value, 'second-generation token after its rotation');
      await active(third.access_token.value, 'third-generation token');
    });

    it('concurrent rotations of one token leave exactly one live successor', T, async () => {
      const grant = await aliceGrant();
      const old = grant.access_token;
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, () => alice.token.rotate({ url: old.manage, accessToken: old.value }))
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      assert.equal(won.length, 1, `exactly one concurrent rotation may succeed; got ${won.length}: ${JSON.stringify(lost.map((l) => ({ status: l.reason?.status, d: l.reason?.description })))}`);
      for (const l of lost) {
        assert.ok(l.reason?.status >= 400 && l.reason?.status < 500, `losing rotation: ${l.reason?.status} ${l.reason?.description}`);
      }
      await inactive(old.value, 'raced token');
      await active(won[0].value.access_token.value, 'the one successor');
    });
  });

  describe('token revocation', () => {
    it('revoke -> inactive; revoking again is 204; rotating a revoked token is refused', T, async () => {
      const grant = await aliceGrant();
      const at = grant.access_token;
      await active(at.value, 'before revoke');
      const res = await ok('token.revoke', alice.token.revoke({ url: at.manage, accessToken: at.value }));
      assert.equal(res, undefined, 'revoke resolves with no body (204)');
      await inactive(at.value, 'revoked token');
      await ok('token.revoke again (idempotent, 204)', alice.token.revoke({ url: at.manage, accessToken: at.value }));
      await inactive(at.value, 'revoked token after second revoke');
      await refused('rotate a revoked token', alice.token.rotate({ url: at.manage, accessToken: at.value }));
      await inactive(at.value, 'revoked token after refused rotation');
    });

    it('revoking the rotated successor kills it; the chain has no live token', T, async () => {
      const grant = await aliceGrant();
      const old = grant.access_token;
      const nu = (await ok('rotate', alice.token.rotate({ url: old.manage, accessToken: old.value }))).access_token;
      await ok('revoke successor', alice.token.revoke({ url: nu.manage, accessToken: nu.value }));
      await inactive(nu.value, 'revoked successor');
      await inactive(old.value, 'rotated-away predecessor');
    });
  });

  describe('grant cancellation', () => {
    it('cancel -> 204, again -> 204; the grant\'s tokens are dead; rotate after cancel is refused', T, async () => {
      const grant = await aliceGrant();
      const first = grant.access_token;
      // Rotate once so the grant has a history, then cancel.
      const live = (await ok('rotate before cancel', alice.token.rotate({ url: first.manage, accessToken: first.value }))).access_token;
      await active(live.value, 'live token before cancel');

      const cont = grant.continue;
      const res = await ok('grant.cancel', alice.grant.cancel({ url: cont.uri, accessToken: cont.access_token.value }));
      assert.equal(res, undefined, 'cancel resolves with no body (204)');
      await ok('grant.cancel again (idempotent, 204)', alice.grant.cancel({ url: cont.uri, accessToken: cont.access_token.value }));

      await inactive(live.value, 'live token of the cancelled grant');
      await inactive(first.value, 'rotated-away token of the cancelled grant');
      await refused('rotate after cancel', alice.token.rotate({ url: live.manage, accessToken: live.value }));
      await inactive(live.value, 'token of the cancelled grant after refused rotation');
      // Revoking a token of a cancelled grant is "already revoked": idempotent 204.
      await ok('revoke a token of the cancelled grant (idempotent)', alice.token.revoke({ url: live.manage, accessToken: live.value }));
    });

    it('cancelling one grant leaves the client\'s other grants alone', T, async () => {
      const g1 = await aliceGrant();
      const g2 = await aliceGrant();
      await ok('cancel g1', alice.grant.cancel({ url: g1.continue.uri, accessToken: g1.continue.access_token.value }));
      await inactive(g1.access_token.value, 'token of cancelled grant');
      await active(g2.access_token.value, 'token of the other grant');
    });
  });

  describe('another client', () => {
    it('cannot rotate, revoke or cancel the first client\'s token or grant', T, async () => {
      const grant = await aliceGrant();
      const at = grant.access_token;
      const cont = grant.continue;

      await refused('bob rotates alice\'s token', bob.token.rotate({ url: at.manage, accessToken: at.value }));
      await active(at.value, 'alice token after bob\'s rotate');
      await refused('bob revokes alice\'s token', bob.token.revoke({ url: at.manage, accessToken: at.value }));
      await active(at.value, 'alice token after bob\'s revoke');
      await refused('bob cancels alice\'s grant', bob.grant.cancel({ url: cont.uri, accessToken: cont.access_token.value }));
      await active(at.value, 'alice token after bob\'s cancel');

      // Bob with his own (valid) token aimed at alice's manage / continue URLs.
      const bobGrant = await ok('bob grant', bob.grant.request({ url: aliceWA.authServer }, { access_token: { access: quoteAccess() } }));
      await refused('bob rotates alice\'s manage URL with his own token', bob.token.rotate({ url: at.manage, accessToken: bobGrant.access_token.value }));
      await refused('bob revokes alice\'s manage URL with his own token', bob.token.revoke({ url: at.manage, accessToken: bobGrant.access_token.value }));
      await refused('bob cancels alice\'s grant with his own continuation token', bob.grant.cancel({ url: cont.uri, accessToken: bobGrant.continue.access_token.value }));
      await active(at.value, 'alice token after all of bob\'s attempts');
      await active(bobGrant.access_token.value, 'bob\'s own token');

      // Introspection tells the two clients apart.
      const r = await introspect(server.privateUrl, bobGrant.access_token.value);
      assert.deepEqual(r.client, { walletAddress: bobUrl });

      // And alice is still fully in control.
      const rotated = await ok('alice rotates after bob\'s attempts', alice.token.rotate({ url: at.manage, accessToken: at.value }));
      await active(rotated.access_token.value, 'alice successor');
    });

    it('a manage call must present the very token its manage URL names', T, async () => {
      const g1 = await aliceGrant();
      const g2 = await aliceGrant();
      await refused('rotate g1 manage URL with g2 token', alice.token.rotate({ url: g1.access_token.manage, accessToken: g2.access_token.value }));
      await refused('revoke g1 manage URL with g2 token', alice.token.revoke({ url: g1.access_token.manage, accessToken: g2.access_token.value }));
      await refused('cancel g1 with g2 continuation token', alice.grant.cancel({ url: g1.continue.uri, accessToken: g2.continue.access_token.value }));
      await active(g1.access_token.value, 'g1 token');
      await active(g2.access_token.value, 'g2 token');
    });
  });

  describe('signatures', () => {
    it('a grant request signed with the wrong key is refused', T, async () => {
      const impostorSameKid = await makeClient(aliceUrl, { ...makeKey(aliceKey.keyId) });
      await refused('grant signed by an unpublished key under alice\'s kid', impostorSameKid.grant.request({ url: aliceWA.authServer }, { access_token: { access: incomingAccess() } }));
      const impostorUnknownKid = await makeClient(aliceUrl, makeKey('not-published'));
      await refused('grant signed by a key with an unknown kid', impostorUnknownKid.grant.request({ url: aliceWA.authServer }, { access_token: { access: incomingAccess() } }));
      // Bob's real key, claiming to be alice.
      const bobAsAlice = await makeClient(aliceUrl, bobKey);
      await refused('grant for alice signed with bob\'s key', bobAsAlice.grant.request({ url: aliceWA.authServer }, { access_token: { access: incomingAccess() } }));
    });

    it('rotate / revoke / cancel signed with the wrong key are refused and change nothing', T, async () => {
      const grant = await aliceGrant();
      const at = grant.access_token;
      const impostor = await makeClient(aliceUrl, makeKey(aliceKey.keyId));
      await refused('rotate with wrong key', impostor.token.rotate({ url: at.manage, accessToken: at.value }));
      await refused('revoke with wrong key', impostor.token.revoke({ url: at.manage, accessToken: at.value }));
      await refused('cancel with wrong key', impostor.grant.cancel({ url: grant.continue.uri, accessToken: grant.continue.access_token.value }));
      await active(at.value, 'token after wrong-key attempts');
    });

    it('a body changed after signing is refused (content-digest); the same request untouched is accepted', T, async () => {
      const body = { access_token: { access: incomingAccess() }, client: aliceUrl };
      const control = await signedFetch({ method: 'POST', url: aliceWA.authServer, body, key: aliceKey });
      assert.equal(control.status, 200, `untampered raw signed request: ${JSON.stringify(control)}`);
      record(control.body);
      const reordered = { ...body, access_token: { access: [{ ...incomingAccess()[0], actions: ['list', 'read', 'create'] }] } };
      const tampered = await signedFetch({
        method: 'POST',
        url: aliceWA.authServer,
        body,
        key: aliceKey,
        tamperBody: () => JSON.stringify(reordered) // same length, same meaning, different bytes
      });
      assert.ok(tampered.status >= 400 && tampered.status < 500, `tampered body: ${JSON.stringify(tampered)}`);
      assert.equal(typeof tampered.body?.error?.code, 'string', `GNAP error body expected: ${JSON.stringify(tampered.body)}`);
    });

    it('an unsigned grant request is refused', T, async () => {
      const res = await fetch(aliceWA.authServer, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ access_token: { access: incomingAccess() }, client: aliceUrl })
      });
      const text = await res.text();
      assert.ok(res.status >= 400 && res.status < 500, `unsigned grant request answered ${res.status}: ${text}`);
    });
  });

  describe('secrets', () => {
    it('no issued token value appears in the server log or in the database files', T, async () => {
      assert.ok(issued.size >= 20, `expected many issued tokens, saw ${issued.size}`);
      const log = server.stderr();
      const files = readAllFiles(db.dir);
      for (const value of issued) {
        assert.ok(!log.includes(value), 'a token value appears in plaintext in the server log (stderr)');
        assert.ok(!files.includes(value), 'a token value appears in plaintext in the database files');
      }
    });
  });
});
