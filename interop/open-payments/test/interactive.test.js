// Interactive outgoing-payment grants with the official @interledger/open-payments client:
// request with interact {redirect, finish}, approval by the identity-provider API (private
// listener, x-idp-secret) or by the sandbox consent page fetched with cookies, the finish redirect
// whose hash the client verifies, continuation with interact_ref, and the token's life after
// that (rotate, revoke, cancel). Also: rejection, and polling when there is no finish URI.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isFinalizedGrant, isPendingGrant } from '@interledger/open-payments';
import { makeKey, startWalletServer } from '../lib/wallet.js';
import { saveLog, startLatchkey, tempDatabase } from '../lib/latchkey.js';
import { introspect } from '../lib/introspect.js';
import { assertAccessEqual, assertTokenValue, makeClient, ok, refused } from '../lib/helpers.js';
import {
  BrowserSession,
  clientNonce,
  IdentityProvider,
  interactionIds,
  verifyFinishRedirect
} from '../lib/interaction.js';

const T = { timeout: 20000 };
const IDP_SECRET = crypto.randomBytes(24).toString('base64url');
const CONTINUE_WAIT = 1; // seconds (--continue-wait), to keep the polling test short

describe('interactive grants: latchkey + @interledger/open-payments', { timeout: 80000 }, () => {
  let wallets, server, db, idp;
  let aliceKey, bobKey, aliceUrl, bobUrl;
  let alice, bob, aliceWA;

  const outgoingAccess = (value = '2500') => [
    {
      type: 'outgoing-payment',
      actions: ['create', 'read', 'list'],
      identifier: aliceUrl,
      limits: {
        debitAmount: { value, assetCode: 'EUR', assetScale: 2 },
        interval: 'R3/2026-02-01T00:00:00Z/P1W'
      }
    }
  ];

  /** Ask for an interactive outgoing-payment grant; `finishUri: null` asks for no finish redirect. */
  async function requestInteractive({ finishUri = 'https://shop.example/return?order=42', value } = {}) {
    const nonce = clientNonce();
    const interact = { start: ['redirect'] };
    if (finishUri) interact.finish = { method: 'redirect', uri: finishUri, nonce };
    const access = outgoingAccess(value);
    const grant = await ok(
      'interactive outgoing-payment grant request',
      alice.grant.request({ url: aliceWA.authServer }, { access_token: { access }, interact })
    );
    assert.ok(isPendingGrant(grant), `pending grant expected: ${JSON.stringify(grant)}`);
    assert.equal(grant.access_token, undefined, 'no token before consent');
    assert.ok(grant.interact.redirect.startsWith(`${server.publicUrl}/interact/`), grant.interact.redirect);
    assert.equal(typeof grant.interact.finish, 'string', 'interact.finish (server nonce) given');
    assert.ok(Number.isInteger(grant.continue.wait), `continue.wait: ${JSON.stringify(grant.continue)}`);
    assertTokenValue(grant.continue.access_token.value, 'continuation token');
    return { grant, nonce, finishUri, access };
  }

  const cont = (grant) => ({ url: grant.continue.uri, accessToken: grant.continue.access_token.value });

  const active = async (token, what) => {
    const r = await introspect(server.privateUrl, token);
    assert.equal(r.active, true, `${what}: expected active, introspection says ${JSON.stringify(r)}`);
    return r;
  };
  const inactive = async (token, what) => {
    const r = await introspect(server.privateUrl, token);
    assert.deepEqual(r, { active: false }, `${what}: expected {active:false}, got ${JSON.stringify(r)}`);
  };

  before(async () => {
    wallets = await startWalletServer();
    aliceKey = makeKey('alice-key-1');
    bobKey = makeKey('bob-key-1');
    aliceUrl = wallets.addWallet('alice', { keys: [aliceKey], publicName: 'Alice’s Bakery', assetCode: 'EUR' });
    bobUrl = wallets.addWallet('bob', { keys: [bobKey], publicName: 'Bob' });
    db = tempDatabase('latchkey-interactive-');
    server = await startLatchkey({
      database: db.url,
      workDir: db.dir,
      extraArgs: ['--idp-secret', IDP_SECRET, '--continue-wait', String(CONTINUE_WAIT)]
    });
    wallets.setAuthServer(`${server.publicUrl}/`);
    alice = await makeClient(aliceUrl, aliceKey);
    bob = await makeClient(bobUrl, bobKey);
    aliceWA = await ok('walletAddress.get(alice)', alice.walletAddress.get({ url: aliceUrl }));
    idp = new IdentityProvider(server.privateUrl, IDP_SECRET);
  });

  after(async () => {
    if (server) {
      await server.stop();
      saveLog('interactive', server.stderr());
    }
    if (wallets) await wallets.close();
    db?.cleanup();
  });

  it('identity-provider approval: finish redirect with a verified hash, continue, token; then rotate, revoke, cancel', T, async () => {
    const { grant, nonce, finishUri, access } = await requestInteractive();

    // Before consent: a made-up reference is refused, and the continuation token is no access token.
    await refused('continue before approval', alice.grant.continue(cont(grant), { interact_ref: 'made-up' }));
    await inactive(grant.continue.access_token.value, 'continuation token');

    // The user's browser opens interact.redirect (session cookie), the identity provider shows the
    // grant and records "accept" over the back channel.
    const browser = new BrowserSession();
    await browser.start(grant.interact.redirect);
    const ids = interactionIds(grant.interact.redirect);
    const wrongSecret = await idp.lookup(ids, { secret: 'not-the-secret' });
    assert.equal(wrongSecret.status, 401, `IdP lookup with a wrong secret: ${JSON.stringify(wrongSecret)}`);
    const noSecret = await idp.lookup(ids, { secret: null });
    assert.equal(noSecret.status, 401, `IdP lookup without a secret: ${JSON.stringify(noSecret)}`);
    const wrongNonce = await idp.lookup({ id: ids.id, nonce: 'AAAAAAAAAAAAAAAAAAAAAA' });
    assert.equal(wrongNonce.status, 404, `IdP lookup with a wrong nonce: ${JSON.stringify(wrongNonce)}`);
    const seen = await idp.lookup(ids);
    assert.equal(seen.status, 200, JSON.stringify(seen));
    assert.equal(seen.body.state, 'PENDING');
    assertAccessEqual(seen.body.access, access, 'IdP lookup');

    // Finishing before the decision is refused and does not burn the interaction.
    const early = await browser.finish(grant.interact.redirect);
    assert.equal(early.status, 401, `finish before a decision: ${early.status} ${early.body}`);

    const accepted = await idp.choose(ids, 'accept');
    assert.equal(accepted.status, 202, JSON.stringify(accepted));
    assert.equal((await idp.lookup(ids)).body.state, 'APPROVED');
    const again = await idp.choose(ids, 'reject');
    assert.ok(again.status >= 400 && again.status < 500, `a decided grant cannot be decided again: ${JSON.stringify(again)}`);

    // The browser finishes: 302 to the client's finish URI with hash and interact_ref.
    const finished = await browser.finish(grant.interact.redirect);
    assert.equal(finished.status, 302, `finish: ${finished.status} ${finished.body}`);
    const interactRef = verifyFinishRedirect({
      location: finished.location,
      finishUri,
      nonce,
      grant,
      grantEndpoint: aliceWA.authServer
    });

    // Another client cannot use alice's continuation.
    await refused('bob continues alice\'s grant', bob.grant.continue(cont(grant), { interact_ref: interactRef }));

    const issued = await ok('continue with interact_ref', alice.grant.continue(cont(grant), { interact_ref: interactRef }));
    assert.ok(isFinalizedGrant(issued), `token expected: ${JSON.stringify(issued)}`);
    assertTokenValue(issued.access_token.value, 'access token');
    assertAccessEqual(issued.access_token.access, access, 'issued token');
    assert.ok(issued.access_token.manage.startsWith(`${server.publicUrl}/token/`), issued.access_token.manage);
    const view = await active(issued.access_token.value, 'issued token');
    assert.deepEqual(view.client, { walletAddress: aliceUrl });
    assertAccessEqual(view.access, access, 'introspection');
    // A resource server asking for exactly "create an outgoing payment for alice" is covered...
    const rsCheck = await introspect(server.privateUrl, issued.access_token.value, [
      { type: 'outgoing-payment', actions: ['create'], identifier: aliceUrl }
    ]);
    assert.equal(rsCheck.active, true, JSON.stringify(rsCheck));
    // ...for bob's account it is not.
    const other = await introspect(server.privateUrl, issued.access_token.value, [
      { type: 'outgoing-payment', actions: ['create'], identifier: bobUrl }
    ]);
    assert.deepEqual(other, { active: false });

    // interact_ref is single-use; the browser cannot replay the finish either.
    await refused('replayed interact_ref', alice.grant.continue(cont(grant), { interact_ref: interactRef }));
    const replay = await browser.finish(grant.interact.redirect);
    assert.ok(replay.status >= 400 && replay.status < 500, `finish replay: ${replay.status} ${replay.location}`);

    // Rotate: old token dead, successor live with the same access.
    const rotated = await ok(
      'rotate',
      alice.token.rotate({ url: issued.access_token.manage, accessToken: issued.access_token.value })
    );
    assert.notEqual(rotated.access_token.value, issued.access_token.value);
    assert.notEqual(rotated.access_token.manage, issued.access_token.manage, 'rotation gives a new manage URL');
    assertAccessEqual(rotated.access_token.access, access, 'rotated token');
    await inactive(issued.access_token.value, 'rotated-away token');
    await active(rotated.access_token.value, 'successor token');

    // Revoke the successor: inactive; revoking again is idempotent.
    const manage = { url: rotated.access_token.manage, accessToken: rotated.access_token.value };
    await ok('revoke', alice.token.revoke(manage));
    await inactive(rotated.access_token.value, 'revoked token');
    await ok('revoke again (idempotent)', alice.token.revoke(manage));
    await refused('rotate a revoked token', alice.token.rotate(manage));

    // Cancel the grant: 204, and again 204; afterwards the continuation is refused.
    await ok('cancel', alice.grant.cancel(cont(grant)));
    await ok('cancel again (idempotent)', alice.grant.cancel(cont(grant)));
    await refused('continue a cancelled grant', alice.grant.continue(cont(grant), { interact_ref: interactRef }));
    await inactive(rotated.access_token.value, 'token of the cancelled grant');
  });

  it('consent-page approval (cookies, CSRF form, no JavaScript): the token dies with the cancelled grant', T, async () => {
    const { grant, nonce, finishUri, access } = await requestInteractive({
      finishUri: 'http://127.0.0.1:9/cb',
      value: '1999'
    });
    const browser = new BrowserSession();
    const { finish } = await browser.consent(grant.interact.redirect, 'accept', {
      expectOnPage: ['Alice’s Bakery', '19.99 EUR', 'every week']
    });
    assert.equal(finish.status, 302, `finish: ${finish.status} ${finish.body}`);
    const interactRef = verifyFinishRedirect({
      location: finish.location,
      finishUri,
      nonce,
      grant,
      grantEndpoint: aliceWA.authServer
    });
    const issued = await ok('continue', alice.grant.continue(cont(grant), { interact_ref: interactRef }));
    assert.ok(isFinalizedGrant(issued));
    assertAccessEqual(issued.access_token.access, access, 'issued token');
    await active(issued.access_token.value, 'issued token');
    // Cancelling the grant kills its live token in the same step.
    await ok('cancel', alice.grant.cancel(cont(grant)));
    await inactive(issued.access_token.value, 'token of the cancelled grant');
  });

  it('identity-provider rejection: finish redirect with result=grant_rejected; continuation refused; cancel still 204', T, async () => {
    const { grant, finishUri } = await requestInteractive({ finishUri: 'https://shop.example/return?order=43' });
    const browser = new BrowserSession();
    await browser.start(grant.interact.redirect);
    const ids = interactionIds(grant.interact.redirect);
    const rejected = await idp.choose(ids, 'reject');
    assert.equal(rejected.status, 202, JSON.stringify(rejected));
    assert.equal((await idp.lookup(ids)).body.state, 'DENIED');
    const finished = await browser.finish(grant.interact.redirect);
    assert.equal(finished.status, 302, `finish: ${finished.status} ${finished.body}`);
    const back = new URL(finished.location);
    assert.equal(back.origin + back.pathname, new URL(finishUri).origin + new URL(finishUri).pathname);
    assert.deepEqual([...back.searchParams], [['order', '43'], ['result', 'grant_rejected']], finished.location);
    const err = await refused('continue a rejected grant', alice.grant.continue(cont(grant), { interact_ref: 'x' }));
    assert.equal(err.code, 'request_denied', `error code: ${err.code} ${err.description}`);
    await ok('cancel a rejected grant', alice.grant.cancel(cont(grant)));
  });

  it('no finish URI: the client polls (too_fast before wait, pending until approved, then the token)', T, async () => {
    const { grant, access } = await requestInteractive({ finishUri: null });
    // auth-server.yaml's interact-response requires `finish` even when the client asked for no
    // finish method (the official client would reject the answer without it).
    assert.equal(typeof grant.interact.finish, 'string');
    assert.equal(grant.continue.wait, CONTINUE_WAIT);
    const tooFast = await refused('poll before wait', alice.grant.continue(cont(grant)));
    assert.equal(tooFast.code, 'too_fast', `error code: ${tooFast.code} ${tooFast.description}`);

    await new Promise((r) => setTimeout(r, CONTINUE_WAIT * 1000 + 150));
    const pending = await ok('poll while pending', alice.grant.continue(cont(grant)));
    assert.ok(isPendingGrant(pending) || !pending.access_token, `still pending: ${JSON.stringify(pending)}`);
    assert.equal(pending.access_token, undefined);
    assert.equal(pending.continue.access_token.value, grant.continue.access_token.value);

    const browser = new BrowserSession();
    await browser.start(grant.interact.redirect);
    const accepted = await idp.choose(interactionIds(grant.interact.redirect), 'accept');
    assert.equal(accepted.status, 202, JSON.stringify(accepted));

    await new Promise((r) => setTimeout(r, CONTINUE_WAIT * 1000 + 150));
    const issued = await ok('poll after approval', alice.grant.continue(cont(grant)));
    assert.ok(isFinalizedGrant(issued), `token expected: ${JSON.stringify(issued)}`);
    assertAccessEqual(issued.access_token.access, access, 'polled token');
    await active(issued.access_token.value, 'polled token');
    await ok('revoke', alice.token.revoke({ url: issued.access_token.manage, accessToken: issued.access_token.value }));
    await inactive(issued.access_token.value, 'revoked polled token');
    await ok('cancel', alice.grant.cancel(cont(grant)));
  });
});
