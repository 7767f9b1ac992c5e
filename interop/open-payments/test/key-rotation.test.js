// A client that publishes a new key at {wallet address}/jwks.json can use it without a server
// restart (DESIGN: keys are cached, and refreshed when a `kid` is unknown; the refresh may be
// rate-limited, so the test allows ~10 s for the new key to be picked up).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeKey, startWalletServer } from '../lib/wallet.js';
import { saveLog, startLatchkey, tempDatabase } from '../lib/latchkey.js';
import { introspect } from '../lib/introspect.js';
import { makeClient, ok } from '../lib/helpers.js';

describe('client key rotation at the wallet', { timeout: 45000 }, () => {
  let wallets, db, server, carolUrl, key1, key2;
  const access = () => [{ type: 'incoming-payment', actions: ['create', 'read'], identifier: carolUrl }];

  before(async () => {
    wallets = await startWalletServer();
    key1 = makeKey('carol-key-1');
    key2 = makeKey('carol-key-2');
    carolUrl = wallets.addWallet('carol', { keys: [key1] });
    db = tempDatabase();
    server = await startLatchkey({ database: db.url, workDir: db.dir });
    wallets.setAuthServer(server.publicUrl);
  });

  after(async () => {
    if (server) {
      await server.stop();
      saveLog('key-rotation', server.stderr());
    }
    if (wallets) await wallets.close();
    if (db) db.cleanup();
  });

  it('a newly published key is accepted; tokens of the old key keep working', { timeout: 30000 }, async () => {
    const c1 = await makeClient(carolUrl, key1);
    const g1 = await ok('grant with key 1', c1.grant.request({ url: server.publicUrl }, { access_token: { access: access() } }));
    const fetchesBefore = wallets.fetchesOf('/carol/jwks.json').length;
    assert.ok(fetchesBefore >= 1);

    wallets.setKeys('carol', [key1, key2]);
    const c2 = await makeClient(carolUrl, key2);
    const deadline = Date.now() + 12000;
    let g2, lastErr;
    while (!g2 && Date.now() < deadline) {
      try {
        g2 = await c2.grant.request({ url: server.publicUrl }, { access_token: { access: access() } });
      } catch (e) {
        lastErr = e;
        assert.ok(e.status === 401 || e.status === 400, `while the new key is unknown: ${e.status} ${e.description}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    assert.ok(g2, `key 2 was never accepted within 12 s: ${lastErr?.status} ${lastErr?.description}`);
    assert.ok(wallets.fetchesOf('/carol/jwks.json').length > fetchesBefore, 'the server refetched jwks.json');

    // The grant made with key 1 is still managed with key 1.
    const r1 = await ok('rotate grant-1 token with key 1', c1.token.rotate({ url: g1.access_token.manage, accessToken: g1.access_token.value }));
    assert.equal((await introspect(server.privateUrl, r1.access_token.value)).active, true);
    assert.equal((await introspect(server.privateUrl, g2.access_token.value)).active, true);
  });
});
