// DESIGN.md invariants 1 and 2: an acknowledged revoke, cancel or rotate survives `kill -9`
// right after the response, and a revoked token is never active again after a restart.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeKey, startWalletServer } from '../lib/wallet.js';
import { hostPort, restartLatchkey, saveLog, startLatchkey, tempDatabase } from '../lib/latchkey.js';
import { introspect } from '../lib/introspect.js';
import { assertAccessEqual, makeClient, ok, refused } from '../lib/helpers.js';

describe('durability across kill -9', { timeout: 60000 }, () => {
  let wallets, db, server, aliceKey, aliceUrl, alice, authServer;
  const processes = []; // every latchkey process of this test, for the logs
  const access = () => [{ type: 'incoming-payment', actions: ['create', 'read', 'list'], identifier: aliceUrl }];

  const state = async (token) => introspect(server.privateUrl, token);
  const expectActive = async (token, what) => {
    const r = await state(token);
    assert.equal(r.active, true, `${what}: expected active after restart, introspection says ${JSON.stringify(r)}`);
    assertAccessEqual(r.access, access(), `${what} access`);
    assert.deepEqual(r.client, { walletAddress: aliceUrl }, `${what} client`);
    return r;
  };
  const expectInactive = async (token, what) => {
    const r = await state(token);
    assert.deepEqual(r, { active: false }, `${what}: expected inactive after restart, introspection says ${JSON.stringify(r)}`);
  };
  const grant = (what) =>
    ok(what, alice.grant.request({ url: authServer }, { access_token: { access: access() } }));

  /** kill -9 and start again on the same database file and the same ports. */
  const crashAndRestart = async (killed) => {
    const info = await killed;
    assert.equal(info.signal, 'SIGKILL', `latchkey should have died by SIGKILL, got ${JSON.stringify(info)}`);
    const publicUrl = server.publicUrl;
    const privateUrl = server.privateUrl;
    server = await restartLatchkey({
      database: db.url,
      workDir: db.dir,
      listen: hostPort(publicUrl),
      privateListen: hostPort(privateUrl)
    });
    processes.push(server);
    assert.equal(server.publicUrl, publicUrl, 'restarted server should report the same PUBLIC_URL');
    assert.equal(server.privateUrl, privateUrl, 'restarted server should report the same PRIVATE_URL');
  };

  before(async () => {
    wallets = await startWalletServer();
    aliceKey = makeKey('alice-key-1');
    aliceUrl = wallets.addWallet('alice', { keys: [aliceKey] });
    db = tempDatabase();
    server = await startLatchkey({ database: db.url, workDir: db.dir });
    processes.push(server);
    wallets.setAuthServer(server.publicUrl);
    alice = await makeClient(aliceUrl, aliceKey);
    authServer = (await ok('walletAddress.get', alice.walletAddress.get({ url: aliceUrl }))).authServer;
  });

  after(async () => {
    if (server) await server.stop();
    if (processes.length) {
      saveLog('restart', processes.map((p, i) => `===== process ${i + 1} (pid ${p.pid}) =====\n${p.stderr()}`).join('\n'));
    }
    if (wallets) await wallets.close();
    if (db) db.cleanup();
  });

  it('revoke, rotate and cancel acknowledged just before kill -9 are all still in force', { timeout: 45000 }, async () => {
    // --- set up grants on the first process
    const gRevoke = await grant('grant to revoke');
    const gRotate = await grant('grant to rotate');
    const gRotate2 = await grant('grant to rotate twice');
    const gCancel = await grant('grant to cancel');
    const gControl = await grant('control grant');
    const gLate = await grant('grant for the single-op crash');

    // A rotation well before the crash, so the chain has history.
    const r2a = (await ok('first rotation', alice.token.rotate({ url: gRotate2.access_token.manage, accessToken: gRotate2.access_token.value }))).access_token;

    // --- phase 1: several state changes at once; SIGKILL in the same tick the last answer arrives.
    const ops = Promise.all([
      alice.token.revoke({ url: gRevoke.access_token.manage, accessToken: gRevoke.access_token.value }),
      alice.token.rotate({ url: gRotate.access_token.manage, accessToken: gRotate.access_token.value }),
      alice.token.rotate({ url: r2a.manage, accessToken: r2a.value }),
      alice.grant.cancel({ url: gCancel.continue.uri, accessToken: gCancel.continue.access_token.value })
    ]);
    let killed;
    const [, rotated, rotated2] = await ok(
      'revoke + rotate + rotate + cancel',
      ops.then((v) => { killed = server.kill9(); return v; }, (e) => { killed = server.kill9(); throw e; })
    );
    const r1 = rotated.access_token;
    const r2b = rotated2.access_token;
    await crashAndRestart(killed);

    await expectInactive(gRevoke.access_token.value, 'revoked token');
    await expectInactive(gRotate.access_token.value, 'rotated-away token');
    const succ = await expectActive(r1.value, 'rotation successor');
    await expectInactive(gRotate2.access_token.value, 'first token of the twice-rotated chain');
    await expectInactive(r2a.value, 'second token of the twice-rotated chain');
    await expectActive(r2b.value, 'third token of the twice-rotated chain');
    await expectInactive(gCancel.access_token.value, 'token of the cancelled grant');
    await expectActive(gControl.access_token.value, 'untouched control token');
    await expectActive(gLate.access_token.value, 'token for the next phase');

    // The public listener agrees with introspection after the restart.
    await refused('rotate the rotated-away token after restart', alice.token.rotate({ url: gRotate.access_token.manage, accessToken: gRotate.access_token.value }));
    await refused('rotate the revoked token after restart', alice.token.rotate({ url: gRevoke.access_token.manage, accessToken: gRevoke.access_token.value }));
    await refused('rotate a token of the cancelled grant after restart', alice.token.rotate({ url: gCancel.access_token.manage, accessToken: gCancel.access_token.value }));
    await ok('cancel the cancelled grant again after restart (204)', alice.grant.cancel({ url: gCancel.continue.uri, accessToken: gCancel.continue.access_token.value }));
    await ok('revoke the revoked token again after restart (204)', alice.token.revoke({ url: gRevoke.access_token.manage, accessToken: gRevoke.access_token.value }));
    await expectInactive(gRevoke.access_token.value, 'revoked token after re-revoke');

    // --- phase 2: one revoke and one rotation, each killed the instant its answer arrives.
    let killed2;
    await ok('revoke then immediate kill', alice.token.revoke({ url: gLate.access_token.manage, accessToken: gLate.access_token.value })
      .then((v) => { killed2 = server.kill9(); return v; }, (e) => { killed2 = server.kill9(); throw e; }));
    await crashAndRestart(killed2);
    await expectInactive(gLate.access_token.value, 'token revoked right before kill -9');

    let killed3;
    const r1b = (await ok('rotate then immediate kill', alice.token.rotate({ url: r1.manage, accessToken: r1.value })
      .then((v) => { killed3 = server.kill9(); return v; }, (e) => { killed3 = server.kill9(); throw e; }))).access_token;
    await crashAndRestart(killed3);
    await expectInactive(r1.value, 'token rotated away right before kill -9');
    const succ2 = await expectActive(r1b.value, 'successor issued right before kill -9');
    assert.equal(succ2.grant, succ.grant, 'successor keeps its grant across restarts');

    // Everything from phase 1 still holds after the second and third crash.
    await expectInactive(gRevoke.access_token.value, 'revoked token after three crashes');
    await expectInactive(gRotate.access_token.value, 'rotated-away token after three crashes');
    await expectInactive(gCancel.access_token.value, 'cancelled grant token after three crashes');
    await expectActive(r2b.value, 'twice-rotated successor after three crashes');
    await expectActive(gControl.access_token.value, 'control token after three crashes');

    // And the surviving successor is still fully usable through the public listener.
    const r1c = (await ok('rotate the surviving successor', alice.token.rotate({ url: r1b.manage, accessToken: r1b.value }))).access_token;
    await expectActive(r1c.value, 'post-restart rotation');
    await expectInactive(r1b.value, 'rotated after restart');
  });
});
