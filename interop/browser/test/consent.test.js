// Interactive outgoing-payment grant through a real browser: the official
// @interledger/open-payments client asks for the grant, headless Chromium (Debian's `chromium`)
// opens interact.redirect, reads latchkey's sandbox consent page and clicks Accept or Deny, and
// lands on the client's finish URI; the client then continues with interact_ref.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  createAuthenticatedClient,
  isFinalizedGrant,
  isPendingGrant,
  OpenPaymentsClientError
} from '@interledger/open-payments';
import { startLatchkey, tempDatabase } from '../../open-payments/lib/latchkey.js';
import {
  artifact,
  assertPng,
  interactionHash,
  introspect,
  launchBrowser,
  startFinishServer
} from '../lib/harness.js';

// What the grant asks for, and how the consent page must put it in words.
const DEBIT = { value: '1234', assetCode: 'USD', assetScale: 2 };
const DEBIT_WORDS = '12.34 USD';
const INTERVAL = 'R12/2026-01-01T00:00:00Z/P1M';
const CLIENT_NAME = 'Alice (sandbox)'; // publicName of the sandbox wallet address the client signs as

describe('consent page in headless Chromium', { timeout: 80000 }, () => {
  let db, server, finish, client, wallet;

  const outgoingAccess = (identifier = wallet.id) => [
    {
      type: 'outgoing-payment',
      actions: ['create', 'read'],
      identifier,
      limits: { debitAmount: DEBIT, interval: INTERVAL }
    }
  ];

  /** Ask for the interactive grant with the official client; returns {grant, nonce, finishUri}. */
  async function requestGrant(run, { identifier } = {}) {
    const nonce = crypto.randomBytes(16).toString('base64url');
    const finishUri = finish.url(run);
    const grant = await client.grant.request(
      { url: wallet.authServer },
      {
        access_token: { access: outgoingAccess(identifier) },
        interact: { start: ['redirect'], finish: { method: 'redirect', uri: finishUri, nonce } }
      }
    );
    assert.ok(isPendingGrant(grant), `interactive grant expected, got ${JSON.stringify(grant)}`);
    assert.ok(grant.interact.redirect.startsWith(`${server.publicUrl}/interact/`), grant.interact.redirect);
    return { grant, nonce, finishUri };
  }

  /** Open interact.redirect and check the consent page; returns the page's visible text. */
  async function openConsent(page, grant) {
    const response = await page.goto(grant.interact.redirect);
    assert.equal(response.status(), 200, `consent page status (at ${page.url()})`);
    const at = new URL(page.url());
    assert.equal(at.origin, server.publicUrl, `the consent page is latchkey's: ${page.url()}`);
    assert.match(at.pathname, /^\/consent\/[^/]+$/, `the start redirects to the consent page: ${page.url()}`);
    const text = await page.locator('body').innerText();
    assert.ok(text.includes(CLIENT_NAME), `the client's name "${CLIENT_NAME}" is shown:\n${text}`);
    const rights = await page.locator('#rights li').allInnerTexts();
    assert.equal(rights.length, 1, `one requested right listed: ${JSON.stringify(rights)}`);
    assert.ok(rights[0].includes(DEBIT_WORDS), `the amount ${DEBIT_WORDS} is shown: ${rights[0]}`);
    assert.match(rights[0], /send payments/i, rights[0]);
    assert.match(rights[0], /every month/i, rights[0]);
    assert.ok(await page.locator('#accept').isVisible(), 'Accept button visible');
    assert.ok(await page.locator('#deny').isVisible(), 'Deny button visible');
    return text;
  }

  /** The single request the finish server got for this run. */
  function landing(finishUri) {
    const want = new URL(finishUri).pathname;
    const hits = finish.hits.filter((h) => new URL(h.url).pathname === want);
    assert.equal(hits.length, 1, `the client's finish URI was hit once: ${JSON.stringify(hits)}`);
    return new URL(hits[0].url);
  }

  before(async () => {
    db = tempDatabase('latchkey-browser-');
    server = await startLatchkey({ database: db.url, workDir: db.dir });
    for (const k of ['WALLET_ADDRESS_URL', 'KEY_ID', 'PRIVATE_KEY']) {
      assert.ok(server.vars[k], `latchkey --dev printed ${k}`);
    }
    finish = await startFinishServer();
    // The client developer's setup from the Open Payments docs: the sandbox wallet address,
    // its key id, and the path of its private key (PEM).
    client = await createAuthenticatedClient({
      walletAddressUrl: server.vars.WALLET_ADDRESS_URL,
      privateKey: server.vars.PRIVATE_KEY,
      keyId: server.vars.KEY_ID,
      validateResponses: true
    });
    wallet = await client.walletAddress.get({ url: server.vars.WALLET_ADDRESS_URL });
    assert.equal(wallet.authServer, `${server.publicUrl}/`, 'the sandbox wallet advertises the grant endpoint');
  });

  after(async () => {
    if (server) {
      await server.stop();
      fs.writeFileSync(artifact('latchkey.stderr.log'), server.stderr());
    }
    if (finish) await finish.close();
    db?.cleanup();
  });

  it('Accept: the browser lands on the finish URI with a valid hash; continuation issues an active token', { timeout: 40000 }, async () => {
    const { grant, nonce, finishUri } = await requestGrant('accept');
    // The consent page must work without JavaScript.
    const browser = await launchBrowser({ viewport: { width: 1280, height: 800 }, javaScriptEnabled: false });
    try {
      const { page } = browser;
      await openConsent(page, grant);
      const shot = artifact('consent.png');
      await page.screenshot({ path: shot, fullPage: true });
      assertPng(shot);

      await Promise.all([page.waitForURL((u) => u.href.startsWith(finish.base)), page.locator('#accept').click()]);
      const landed = new URL(page.url());
      assert.equal(landed.pathname, '/callback/accept');
      assert.equal(landed.searchParams.get('client_state'), 'accept', "the finish URI's own query is kept");
      const interactRef = landed.searchParams.get('interact_ref');
      const hash = landed.searchParams.get('hash');
      assert.ok(interactRef, `interact_ref in ${landed.href}`);
      assert.ok(hash, `hash in ${landed.href}`);
      assert.equal(landed.searchParams.get('result'), null);
      assert.equal(landing(finishUri).href, landed.href, 'the finish server saw the same URL');
      assert.equal(
        hash,
        interactionHash(nonce, grant.interact.finish, interactRef, wallet.authServer),
        'hash = base64(SHA-256(client nonce \\n interact.finish \\n interact_ref \\n grant endpoint))'
      );
      assert.match(await page.locator('body').innerText(), /you can close this window/);

      const continued = await client.grant.continue(
        { url: grant.continue.uri, accessToken: grant.continue.access_token.value },
        { interact_ref: interactRef }
      );
      assert.ok(isFinalizedGrant(continued), `continuation issues the token: ${JSON.stringify(continued)}`);
      const token = continued.access_token.value;
      const seen = await introspect(server.privateUrl, token);
      assert.equal(seen.active, true, JSON.stringify(seen));
      assert.equal(seen.client?.walletAddress, wallet.id);
      assert.deepEqual(seen.access.map((a) => a.limits?.debitAmount), [DEBIT], 'the approved limit is what was asked for');

      // The browser cannot replay the finish: the interaction's session is gone.
      const replay = await page.goto(`${grant.interact.redirect}/finish`);
      assert.ok(replay.status() >= 400 && replay.status() < 500, `finish replay refused, got ${replay.status()}`);
      assert.equal(landing(finishUri).href, landed.href, 'no second redirect to the client');
    } finally {
      await browser.close();
    }
  });

  it('Deny: the browser lands on the finish URI with result=grant_rejected; continuation is refused', { timeout: 40000 }, async () => {
    const { grant, finishUri } = await requestGrant('deny');
    const browser = await launchBrowser({ viewport: { width: 1280, height: 800 } });
    try {
      const { page } = browser;
      await openConsent(page, grant);

      // Clickjacking: another site (here the client's own) cannot show the consent page in a frame,
      // even in the very browser that holds the interaction's session.
      const framer = await browser.context.newPage();
      await framer.goto(finish.frameUrl(page.url()));
      const victim = await (await framer.waitForSelector('#victim')).contentFrame();
      await victim.waitForLoadState('load').catch(() => {});
      assert.equal(await victim.locator('#accept, #deny, form').count(), 0, 'the framed consent page must not render');
      assert.ok(!victim.url().startsWith(server.publicUrl), `the frame was blocked, it shows ${victim.url()}`);
      await framer.close();

      await Promise.all([page.waitForURL((u) => u.href.startsWith(finish.base)), page.locator('#deny').click()]);
      const landed = new URL(page.url());
      assert.equal(landed.pathname, '/callback/deny');
      assert.deepEqual(
        [...landed.searchParams],
        [['client_state', 'deny'], ['result', 'grant_rejected']],
        `only result=grant_rejected is added: ${landed.href}`
      );
      assert.equal(landing(finishUri).href, landed.href);

      let refusal;
      try {
        await client.grant.continue(
          { url: grant.continue.uri, accessToken: grant.continue.access_token.value },
          { interact_ref: 'no-reference-was-issued' }
        );
      } catch (e) {
        refusal = e;
      }
      assert.ok(refusal instanceof OpenPaymentsClientError, `continuation refused, got ${refusal ?? 'a token'}`);
      assert.ok(refusal.status >= 400 && refusal.status < 500, `4xx refusal: ${refusal.status} ${refusal.description}`);
      // The rejected grant can still be cancelled (204).
      await client.grant.cancel({ url: grant.continue.uri, accessToken: grant.continue.access_token.value });
    } finally {
      await browser.close();
    }
  });

  const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

  /** The consent page in `page` fits the 390 px wide phone screen: no horizontal scrolling. */
  async function assertFitsPhone(page) {
    const m = await page.evaluate(() => ({
      viewportMeta: document.querySelector('meta[name="viewport"]')?.content ?? null,
      innerWidth: window.innerWidth,
      scrollWidth: document.documentElement.scrollWidth,
      bodyScrollWidth: document.body.scrollWidth
    }));
    // A mobile browser widens the layout viewport to fit content that overflows (innerWidth
    // grows with scrollWidth), so scrollWidth <= innerWidth alone would pass vacuously: the
    // layout viewport must also still be the phone's 390 px.
    assert.match(m.viewportMeta ?? '', /width=device-width/, `device-width viewport declared: ${JSON.stringify(m)}`);
    assert.equal(m.innerWidth, 390, `layout viewport is the phone's width (content overflowing?): ${JSON.stringify(m)}`);
    assert.ok(m.scrollWidth <= m.innerWidth, `no horizontal scrolling: ${JSON.stringify(m)}`);
    assert.ok(m.bodyScrollWidth <= m.innerWidth, `no horizontal scrolling: ${JSON.stringify(m)}`);
    for (const id of ['#accept', '#deny']) {
      const box = await page.locator(id).boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `${id} inside the screen: ${JSON.stringify(box)}`);
      assert.ok(box.height >= 40, `${id} is a comfortable tap target (${box.height}px high)`);
    }
    // Every requested right stays inside the screen too.
    const rights = await page.locator('#rights li').evaluateAll((lis) =>
      lis.map((li) => ({ right: li.getBoundingClientRect().right, scrollWidth: li.scrollWidth, clientWidth: li.clientWidth }))
    );
    for (const r of rights) {
      assert.ok(r.right <= 390 && r.scrollWidth <= r.clientWidth, `a right's text overflows its box: ${JSON.stringify(r)}`);
    }
  }

  it('the consent page fits a phone screen (390x844) without horizontal scrolling', { timeout: 40000 }, async () => {
    const { grant } = await requestGrant('phone');
    const browser = await launchBrowser(PHONE);
    try {
      const { page } = browser;
      await openConsent(page, grant);
      const shot = artifact('consent-phone.png');
      await page.screenshot({ path: shot, fullPage: true });
      assertPng(shot);
      await assertFitsPhone(page);
      await client.grant.cancel({ url: grant.continue.uri, accessToken: grant.continue.access_token.value });
    } finally {
      await browser.close();
    }
  });

  // Regression: an account URL without break opportunities (hex ids are common in wallet
  // addresses) once ran off a phone screen; the card now wraps anywhere.
  it('a long account identifier without break opportunities still fits the phone screen', {
    timeout: 40000
  }, async () => {
    const { grant } = await requestGrant('phone-long', {
      identifier: 'https://wallet.example/accounts/5f1d0c9b7a3e4d2c8b6a9f0e1d2c3b4a5f6e7d8c9b0a1f2e'
    });
    const browser = await launchBrowser(PHONE);
    try {
      const { page } = browser;
      await openConsent(page, grant);
      await page.screenshot({ path: artifact('consent-phone-long-identifier.png'), fullPage: true });
      await client.grant.cancel({ url: grant.continue.uri, accessToken: grant.continue.access_token.value });
      await assertFitsPhone(page);
    } finally {
      await browser.close();
    }
  });
});
