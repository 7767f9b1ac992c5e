// The second seed's Java sequence (shared/seeds/001_*.txt), step by step, with the official
// @interledger/open-payments client against the sandbox of `latchkey serve --dev`:
//
//   3. retrieve the sender and receiver wallets
//   4. incoming-payment grant on the receiver's wallet    (then: create incoming payment of 11.25)
//   5. quote grant on the sender's wallet                  (then: create quote -> debitAmount)
//   6. outgoing-payment grant with interaction, limited to the quote's debitAmount,
//      finish URI http://localhost:PORT?paymentId=1234
//   7. USER APPROVES REQUEST                               (the sandbox consent page)
//   8. finalize by continuation with interact_ref
//   9. revoke: token revoke and grant cancel
//
// Latchkey is the authorization server only: creating the incoming payment and the quote are
// resource-server calls that are not part of it. Each step's effect is checked the way a
// resource server sees it, by token introspection, and the amounts are what the resource server
// would have produced (11.25 in the receiver's asset; no FX, both sandbox wallets are USD).
//
// The client is configured exactly as in the seed: the sandbox wallet address, its key id and the
// *path* of its private key, as `latchkey serve --dev` prints them.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createAuthenticatedClient, isFinalizedGrant, isPendingGrant } from '@interledger/open-payments';
import { saveLog, startLatchkey, tempDatabase } from '../lib/latchkey.js';
import { introspect } from '../lib/introspect.js';
import { assertAccessEqual, ok, refused } from '../lib/helpers.js';
import { BrowserSession, clientNonce, verifyFinishRedirect } from '../lib/interaction.js';

const T = { timeout: 15000 };

/** "11.25" in an asset with `scale` decimals -> "1125" (scale 2), as an Open Payments amount value. */
function minorUnits(major, scale) {
  const [int, frac = ''] = major.split('.');
  assert.ok(frac.length <= scale, `${major} has more decimals than asset scale ${scale}`);
  return BigInt(int + frac.padEnd(scale, '0')).toString();
}

describe('seed 001: incoming-payment grant, quote grant, interactive outgoing-payment grant, finalize, revoke', { timeout: 60000 }, () => {
  let db, server, client;
  let senderWallet, receiverWallet;
  let incomingGrant, quoteGrant, opContinueInteract, finalized, opInteraction;
  let incomingPayment, quote;

  const cont = (grant) => ({ url: grant.continue.uri, accessToken: grant.continue.access_token.value });
  /** Introspect as a resource server would before serving `access` (omit for the whole grant). */
  const rs = (token, access) => introspect(server.privateUrl, token, access);
  const assertActive = async (token, access, what) => {
    const r = await rs(token, access);
    assert.equal(r.active, true, `${what}: expected active, introspection says ${JSON.stringify(r)}`);
    return r;
  };
  const assertInactive = async (token, access, what) => {
    const r = await rs(token, access);
    assert.deepEqual(r, { active: false }, `${what}: expected {active:false}, introspection says ${JSON.stringify(r)}`);
  };

  const incomingCreate = () => [{ type: 'incoming-payment', actions: ['create'], identifier: receiverWallet.id }];
  const quoteCreate = () => [{ type: 'quote', actions: ['create'] }];
  const outgoingCreate = () => [{ type: 'outgoing-payment', actions: ['create'], identifier: senderWallet.id }];

  before(async () => {
    db = tempDatabase('latchkey-seed-');
    server = await startLatchkey({ database: db.url, workDir: db.dir });
    const v = server.vars;
    for (const k of ['WALLET_ADDRESS_URL', 'KEY_ID', 'PRIVATE_KEY', 'BOB_WALLET_ADDRESS_URL']) {
      assert.ok(v[k], `latchkey --dev printed ${k}`);
    }
    // 2. Client instance: OpenPaymentsHttpClient.defaultClient("WalletAddress", "PrivateKeyPEM", "KeyId")
    client = await createAuthenticatedClient({
      walletAddressUrl: v.WALLET_ADDRESS_URL,
      privateKey: v.PRIVATE_KEY,
      keyId: v.KEY_ID,
      validateResponses: true
    });
  });

  after(async () => {
    if (server) {
      await server.stop();
      saveLog('seed-sequence', server.stderr());
    }
    db?.cleanup();
  });

  it('3. retrieves the sender and receiver wallets', T, async () => {
    senderWallet = await ok('getWalletAddress(sender)', client.walletAddress.get({ url: server.vars.WALLET_ADDRESS_URL }));
    receiverWallet = await ok('getWalletAddress(receiver)', client.walletAddress.get({ url: server.vars.BOB_WALLET_ADDRESS_URL }));
    for (const w of [senderWallet, receiverWallet]) {
      assert.equal(w.authServer, `${server.publicUrl}/`, `${w.id} advertises latchkey's grant endpoint`);
    }
    assert.notEqual(senderWallet.id, receiverWallet.id);
  });

  it('4. incoming-payment grant on the receiver\'s wallet: token active for "create incoming payment"', T, async () => {
    const access = [
      { type: 'incoming-payment', actions: ['create', 'read', 'list', 'complete'], identifier: receiverWallet.id }
    ];
    incomingGrant = await ok(
      'createGrantIncomingPayment(receiverWallet)',
      client.grant.request({ url: receiverWallet.authServer }, { access_token: { access } })
    );
    assert.ok(isFinalizedGrant(incomingGrant), `incoming-payment grants need no interaction: ${JSON.stringify(incomingGrant)}`);
    assertAccessEqual(incomingGrant.access_token.access, access, 'incoming-payment grant');
    const seen = await assertActive(incomingGrant.access_token.value, incomingCreate(), 'RS: create incoming payment');
    assert.deepEqual(seen.client, { walletAddress: senderWallet.id }, 'the token belongs to the signing client');
    await assertInactive(
      incomingGrant.access_token.value,
      [{ type: 'incoming-payment', actions: ['create'], identifier: senderWallet.id }],
      'the incoming-payment token does not cover the sender\'s account'
    );
    // createIncomingPayment(receiverWallet, grant, 11.25) happens at the resource server.
    incomingPayment = {
      walletAddress: receiverWallet.id,
      incomingAmount: {
        value: minorUnits('11.25', receiverWallet.assetScale),
        assetCode: receiverWallet.assetCode,
        assetScale: receiverWallet.assetScale
      }
    };
  });

  it('5. quote grant on the sender\'s wallet: token active for "create quote"', T, async () => {
    const access = [{ type: 'quote', actions: ['create', 'read'] }];
    quoteGrant = await ok(
      'createGrantQuote(senderWallet)',
      client.grant.request({ url: senderWallet.authServer }, { access_token: { access } })
    );
    assert.ok(isFinalizedGrant(quoteGrant), `quote grants need no interaction: ${JSON.stringify(quoteGrant)}`);
    assertAccessEqual(quoteGrant.access_token.access, access, 'quote grant');
    await assertActive(quoteGrant.access_token.value, quoteCreate(), 'RS: create quote');
    await assertInactive(quoteGrant.access_token.value, outgoingCreate(), 'a quote token cannot pay');
    // createQuote(token, senderWallet, incomingPayment) happens at the resource server; both sandbox
    // wallets are USD/2, so the debit amount equals the incoming amount (no fees in the sandbox).
    assert.equal(senderWallet.assetCode, receiverWallet.assetCode);
    assert.equal(senderWallet.assetScale, receiverWallet.assetScale);
    quote = { debitAmount: { ...incomingPayment.incomingAmount }, receiveAmount: { ...incomingPayment.incomingAmount } };
  });

  it('6. outgoing-payment grant limited to the quote\'s debitAmount asks for interaction', T, async () => {
    const port = 8088; // the Java app's own callback server; the test reads the redirect instead
    const urlToOpen = `http://localhost:${port}?paymentId=1234`;
    const nonce = clientNonce();
    const access = [
      {
        type: 'outgoing-payment',
        actions: ['create', 'read', 'list'],
        identifier: senderWallet.id,
        limits: { debitAmount: quote.debitAmount }
      }
    ];
    opContinueInteract = await ok(
      'createGrantContinuation(senderWallet, debitAmount, urlToOpen)',
      client.grant.request(
        { url: senderWallet.authServer },
        {
          access_token: { access },
          interact: { start: ['redirect'], finish: { method: 'redirect', uri: urlToOpen, nonce } }
        }
      )
    );
    assert.ok(isPendingGrant(opContinueInteract), `interaction expected: ${JSON.stringify(opContinueInteract)}`);
    assert.equal(opContinueInteract.access_token, undefined, 'no token before the user approves');
    opInteraction = { urlToOpen, nonce, access };
    // The continuation token is not an access token.
    await assertInactive(opContinueInteract.continue.access_token.value, undefined, 'continuation token');
    await refused(
      'finalize before the user approves',
      client.grant.continue(cont(opContinueInteract), { interact_ref: 'Reference from USER interaction.' })
    );
  });

  it('7. the user approves on the consent page; the browser returns to urlToOpen with a hash that verifies', T, async () => {
    const browser = new BrowserSession();
    const { finish } = await browser.consent(opContinueInteract.interact.redirect, 'accept', {
      expectOnPage: ['Alice (sandbox)', '11.25 USD']
    });
    assert.equal(finish.status, 302, `finish: ${finish.status} ${finish.body}`);
    opInteraction.interactRef = verifyFinishRedirect({
      location: finish.location,
      finishUri: opInteraction.urlToOpen,
      nonce: opInteraction.nonce,
      grant: opContinueInteract,
      grantEndpoint: senderWallet.authServer
    });
    assert.equal(new URL(finish.location).searchParams.get('paymentId'), '1234');
  });

  it('8. finalize by continuation: token active for "create outgoing payment" up to the debitAmount', T, async () => {
    finalized = await ok(
      'createGrantFinalize(opContinueInteract, interact_ref)',
      client.grant.continue(cont(opContinueInteract), { interact_ref: opInteraction.interactRef })
    );
    assert.ok(isFinalizedGrant(finalized), `token expected: ${JSON.stringify(finalized)}`);
    assertAccessEqual(finalized.access_token.access, opInteraction.access, 'finalized grant');
    const seen = await assertActive(finalized.access_token.value, outgoingCreate(), 'RS: create outgoing payment');
    assert.deepEqual(seen.access[0].limits, { debitAmount: quote.debitAmount }, 'the limit the user approved');
    await assertInactive(
      finalized.access_token.value,
      [{ type: 'outgoing-payment', actions: ['create'], identifier: receiverWallet.id }],
      'the token cannot pay from the receiver\'s account'
    );
    // The earlier grants are untouched.
    await assertActive(incomingGrant.access_token.value, incomingCreate(), 'incoming-payment token after step 8');
    await assertActive(quoteGrant.access_token.value, quoteCreate(), 'quote token after step 8');
  });

  it('9. revoke: token revoke and grant cancel, each seen by introspection', T, async () => {
    // The outgoing-payment token first, then its grant.
    const opManage = { url: finalized.access_token.manage, accessToken: finalized.access_token.value };
    await ok('token.revoke(outgoing-payment token)', client.token.revoke(opManage));
    await assertInactive(finalized.access_token.value, outgoingCreate(), 'revoked outgoing-payment token');
    await refused('rotate the revoked token', client.token.rotate(opManage));
    await ok('grant.cancel(outgoing-payment grant)', client.grant.cancel(cont(opContinueInteract)));
    await refused(
      'continue the cancelled grant',
      client.grant.continue(cont(opContinueInteract), { interact_ref: opInteraction.interactRef })
    );
    // Revoking one grant leaves the others alone.
    await assertActive(incomingGrant.access_token.value, incomingCreate(), 'incoming-payment token after the outgoing revoke');
    await assertActive(quoteGrant.access_token.value, quoteCreate(), 'quote token after the outgoing revoke');

    // The incoming-payment grant is cancelled with its token still live: the token dies with it.
    await ok('grant.cancel(incoming-payment grant)', client.grant.cancel(cont(incomingGrant)));
    await assertInactive(incomingGrant.access_token.value, undefined, 'token of the cancelled incoming-payment grant');
    await assertActive(quoteGrant.access_token.value, quoteCreate(), 'quote token after the incoming cancel');

    // The quote grant: token revoke, then grant cancel; both idempotent.
    const quoteManage = { url: quoteGrant.access_token.manage, accessToken: quoteGrant.access_token.value };
    await ok('token.revoke(quote token)', client.token.revoke(quoteManage));
    await ok('token.revoke(quote token) again', client.token.revoke(quoteManage));
    await assertInactive(quoteGrant.access_token.value, undefined, 'revoked quote token');
    await ok('grant.cancel(quote grant)', client.grant.cancel(cont(quoteGrant)));
    await ok('grant.cancel(quote grant) again', client.grant.cancel(cont(quoteGrant)));
  });
});
