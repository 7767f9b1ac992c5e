// Three `latchkey serve` nodes share one PostgreSQL database behind a round-robin HTTP proxy. The
// official @interledger/open-payments client runs the token lifecycle through the proxy, so
// consecutive calls land on different nodes; after each acknowledged change, introspection on
// EVERY node's private listener must agree with it. Also measures how long a revocation takes to
// be visible on the nodes that did not serve it (printed, and saved to artifacts/).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { createAuthenticatedClient, OpenPaymentsClientError } from '@interledger/open-payments';
import { LATCHKEY_BIN } from '../../open-payments/lib/latchkey.js';
import { ADMIN_URL, saveLog, startCluster } from '../lib/cluster.js';
import { introspect } from '../lib/introspect.js';
import { makeKey } from '../lib/wallet.js';

const RACES = Number(process.env.CLUSTER_RACES ?? 10);
const REVOKES = Number(process.env.CLUSTER_REVOKES ?? 50);

function explain(e) {
  if (!(e instanceof OpenPaymentsClientError)) return e?.stack ?? String(e);
  return JSON.stringify({ message: e.message, status: e.status, code: e.code, description: e.description });
}

async function ok(what, promise) {
  try {
    return await promise;
  } catch (e) {
    throw new assert.AssertionError({ message: `${what} failed: ${explain(e)}` });
  }
}

function isRefusal(e) {
  return e instanceof OpenPaymentsClientError && Number.isInteger(e.status) && e.status >= 400 && e.status < 500;
}

const sortedAccess = (access) => [...access]
  .map((a) => ({ ...a, actions: [...a.actions].sort() }))
  .sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));

function percentile(sorted, p) {
  return sorted[Math.round((sorted.length - 1) * p)];
}

const ms = (x) => Math.round(x * 1000) / 1000;

/** `promise`, or a rejection with `message` after `limit` ms. */
function withDeadline(promise, limit, message) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(message)), limit); });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe('three latchkey nodes, one PostgreSQL database, a round-robin proxy', { timeout: 55000 }, () => {
  let cluster, nodes, proxy, wallets;
  let aliceUrl, alice, authServer;

  const access = () => [{ type: 'incoming-payment', actions: ['create', 'read', 'list'], identifier: aliceUrl }];

  const grant = (what = 'grant request') =>
    ok(what, alice.grant.request({ url: authServer }, { access_token: { access: access() } }));

  /** The node (index) that served the last `method` request for `url` through the proxy. */
  const servedBy = (method, url) => {
    const hits = proxy.find(method, new URL(url).pathname);
    assert.ok(hits.length > 0, `the proxy saw no ${method} ${url}`);
    return hits[hits.length - 1].node;
  };

  /** Introspects `token` on every node's private listener; all must say `active`. */
  const agree = async (token, active, step) => {
    const answers = await Promise.all(nodes.map((n) => introspect(n.privateUrl, token)));
    answers.forEach((a, i) => {
      assert.equal(a.active, active,
        `${step}: node ${i} says ${JSON.stringify(a)}, want active=${active} (all nodes: ${JSON.stringify(answers.map((x) => x.active))})`);
      if (active) {
        assert.equal(typeof a.grant, 'string', `${step}: node ${i}: no grant id`);
        assert.deepEqual(a.client, { walletAddress: aliceUrl }, `${step}: node ${i}: client`);
        assert.deepEqual(sortedAccess(a.access), sortedAccess(access()), `${step}: node ${i}: access`);
      }
    });
    for (let i = 1; i < answers.length; i++) {
      assert.deepEqual(answers[i], answers[0], `${step}: nodes 0 and ${i} give different answers`);
    }
  };

  before(async () => {
    cluster = await startCluster({ size: 3, name: 'cluster' });
    ({ nodes, proxy, wallets } = cluster);
    const aliceKey = makeKey('alice-key-1');
    aliceUrl = wallets.addWallet('alice', { keys: [aliceKey], publicName: 'Alice' });
    alice = await createAuthenticatedClient({
      walletAddressUrl: aliceUrl,
      privateKey: aliceKey.privateKey,
      keyId: aliceKey.keyId,
      validateResponses: true
    });
    const wa = await ok('walletAddress.get', alice.walletAddress.get({ url: aliceUrl }));
    authServer = wa.authServer;
    assert.equal(authServer, proxy.url, 'the wallet sends clients to the proxy');
  });

  after(async () => {
    if (cluster) await cluster.teardown();
  });

  it('grant, rotate, revoke, cancel through the proxy: every node agrees after each change', async () => {
    // Grant A: issued on one node, live everywhere.
    const a = await grant('grant A');
    const a1 = a.access_token;
    assert.ok(a1.manage.startsWith(`${proxy.url}/token/`), `manage URL ${a1.manage} points at the proxy`);
    assert.ok(a.continue.uri.startsWith(`${proxy.url}/continue/`), `continue URI ${a.continue.uri} points at the proxy`);
    await agree(a1.value, true, 'after grant A');

    // Rotate (on the next node): the old value is dead everywhere, the successor live everywhere.
    const rotated = await ok('rotate A', alice.token.rotate({ url: a1.manage, accessToken: a1.value }));
    const a2 = rotated.access_token;
    assert.notEqual(a2.value, a1.value);
    await agree(a1.value, false, 'after rotate A: old value');
    await agree(a2.value, true, 'after rotate A: successor');

    // Revoke the successor (on yet another node).
    await ok('revoke A', alice.token.revoke({ url: a2.manage, accessToken: a2.value }));
    await agree(a2.value, false, 'after revoke A');
    await agree(a1.value, false, 'after revoke A: the rotated-away value');

    // The three calls were served by three different nodes.
    const [grantNode, rotateNode, revokeNode] = [
      servedBy('POST', authServer), servedBy('POST', a1.manage), servedBy('DELETE', a2.manage)
    ];
    assert.equal(new Set([grantNode, rotateNode, revokeNode]).size, 3,
      `grant/rotate/revoke served by nodes ${grantNode}/${rotateNode}/${revokeNode}`);

    // Any node refuses to rotate the revoked token; revoking it again is idempotent.
    let refusal;
    try {
      await alice.token.rotate({ url: a2.manage, accessToken: a2.value });
    } catch (e) {
      refusal = e;
    }
    assert.ok(isRefusal(refusal), `rotate of a revoked token must be a 4xx refusal, got ${explain(refusal)}`);
    await agree(a2.value, false, 'after a refused rotate');

    // Grant B: rotate, then cancel the grant: both values dead everywhere.
    const b = await grant('grant B');
    const b1 = b.access_token;
    await agree(b1.value, true, 'after grant B');
    const b2 = (await ok('rotate B', alice.token.rotate({ url: b1.manage, accessToken: b1.value }))).access_token;
    await agree(b1.value, false, 'after rotate B: old value');
    await agree(b2.value, true, 'after rotate B: successor');
    await ok('cancel B', alice.grant.cancel({ url: b.continue.uri, accessToken: b.continue.access_token.value }));
    await agree(b2.value, false, 'after cancel B: live token');
    await agree(b1.value, false, 'after cancel B: rotated-away value');
    assert.notEqual(servedBy('POST', b1.manage), servedBy('DELETE', b.continue.uri), 'rotate and cancel on different nodes');

    // Cancel grant A too (its token is already revoked): acknowledged, still dead everywhere.
    await ok('cancel A', alice.grant.cancel({ url: a.continue.uri, accessToken: a.continue.access_token.value }));
    await agree(a2.value, false, 'after cancel A');
  });

  it(`cancel racing rotate through different nodes leaves no live token (${RACES} races)`, async () => {
    const outcomes = { rotateWon: 0, rotateRefused: 0 };
    for (let i = 0; i < RACES; i++) {
      const g = await grant(`race ${i}: grant`);
      const t = g.access_token;
      await agree(t.value, true, `race ${i}: after grant`);
      const cancel = () => alice.grant.cancel({ url: g.continue.uri, accessToken: g.continue.access_token.value });
      const rotate = () => alice.token.rotate({ url: t.manage, accessToken: t.value });
      // Alternate which call leaves first.
      const [cancelled, rotated] = i % 2 === 0
        ? await Promise.allSettled([cancel(), rotate()])
        : await Promise.allSettled([rotate(), cancel()]).then(([r, c]) => [c, r]);

      const cancelNode = servedBy('DELETE', g.continue.uri);
      const rotateNode = servedBy('POST', t.manage);
      assert.notEqual(cancelNode, rotateNode, `race ${i}: cancel and rotate were served by the same node ${cancelNode}`);

      assert.equal(cancelled.status, 'fulfilled', `race ${i}: cancel must be acknowledged: ${explain(cancelled.reason)}`);
      await agree(t.value, false, `race ${i}: after both answered: the original value`);
      if (rotated.status === 'fulfilled') {
        outcomes.rotateWon += 1;
        await agree(rotated.value.access_token.value, false, `race ${i}: after both answered: the successor of the rotate`);
      } else {
        assert.ok(isRefusal(rotated.reason), `race ${i}: a losing rotate must be a 4xx refusal, got ${explain(rotated.reason)}`);
        outcomes.rotateRefused += 1;
      }
    }
    console.log(`cancel vs rotate over ${RACES} races: rotate answered 200 ${outcomes.rotateWon}x, refused ${outcomes.rotateRefused}x; no live token after any`);
  });

  it(`revoke racing introspection: no node says active after the 204 (${RACES} revokes)`, async () => {
    let polled = 0;
    let inactiveBeforeAck = 0;
    for (let i = 0; i < RACES; i++) {
      const g = await grant(`revoke race ${i}: grant`);
      const t = g.access_token;
      // Pollers on every node, from before the revoke until each has seen it in a poll sent after
      // the acknowledgement. None of those may say active:true.
      let ackAt = null;
      let stop = false;
      const polls = nodes.map(() => []);
      const resolvers = [];
      const firstActive = nodes.map(() => new Promise((resolve) => resolvers.push(resolve)));
      const pollers = Promise.all(nodes.map(async (n, k) => {
        while (!stop) {
          const sentAt = performance.now();
          const r = await introspect(n.privateUrl, t.value);
          polls[k].push({ sentAt, active: r.active });
          if (r.active) resolvers[k]();
          if (ackAt !== null && sentAt >= ackAt && !r.active) return;
        }
      }));
      pollers.catch(() => {}); // awaited below; a failure after an earlier one is not "unhandled"
      try {
        await withDeadline(
          Promise.race([Promise.all(firstActive), pollers.then(() => assert.fail('pollers stopped early'))]),
          5000, `revoke race ${i}: the new token is not active on every node`);
        await ok(`revoke race ${i}: revoke`, alice.token.revoke({ url: t.manage, accessToken: t.value }));
        ackAt = performance.now();
        await withDeadline(pollers, 5000, `revoke race ${i}: a poller never saw the revocation`);
      } finally {
        stop = true;
      }
      for (const [k, list] of polls.entries()) {
        polled += list.length;
        for (const p of list) {
          assert.ok(!(p.sentAt >= ackAt && p.active),
            `revoke race ${i}: node ${k} said active:true to an introspection sent ${ms(p.sentAt - ackAt)} ms after the revoke was acknowledged`);
        }
        if (list.some((p) => p.sentAt < ackAt && !p.active)) inactiveBeforeAck += 1;
      }
    }
    console.log(`revoke vs introspection over ${RACES} revokes: ${polled} racing introspections, none active after the 204; ` +
      `in ${inactiveBeforeAck} of ${RACES * nodes.length} (revoke, node) pairs a poll sent before the 204 reached the client already answered inactive`);
  });

  it(`revocation visibility on the nodes that did not serve it (measured over ${REVOKES} revokes)`, async () => {
    const visibility = []; // ms from the revoke's 204 to the first active:false, per other node
    const onAllOthers = []; // ms until the last of the other nodes said active:false, per revoke
    const roundTrips = []; // ms of one introspection of a live token on an other node (baseline)
    let polls = 0;
    for (let i = 0; i < REVOKES; i++) {
      const g = await grant(`revoke ${i}: grant`);
      const t = g.access_token;
      await agree(t.value, true, `revoke ${i}: after grant`);
      // Baseline: one introspection of the live token on every node (the revoke's node is known
      // only afterwards; the others' times are kept).
      const before = await Promise.all(nodes.map(async (n) => {
        const sent = performance.now();
        assert.equal((await introspect(n.privateUrl, t.value)).active, true);
        return performance.now() - sent;
      }));

      await ok(`revoke ${i}`, alice.token.revoke({ url: t.manage, accessToken: t.value }));
      const ackAt = performance.now();
      const servedOn = servedBy('DELETE', t.manage);
      const others = nodes.map((n, k) => k).filter((k) => k !== servedOn);
      const seen = await Promise.all(others.map(async (k) => {
        for (let attempt = 1; ; attempt++) {
          polls += 1;
          const r = await introspect(nodes[k].privateUrl, t.value);
          if (!r.active) return performance.now() - ackAt;
          assert.ok(attempt < 1000, `revoke ${i}: node ${k} never showed the revocation`);
        }
      }));
      visibility.push(...seen);
      onAllOthers.push(Math.max(...seen));
      roundTrips.push(...others.map((k) => before[k]));
    }

    for (const xs of [visibility, onAllOthers, roundTrips]) xs.sort((x, y) => x - y);
    const summary = (xs) => ({ n: xs.length, median: ms(percentile(xs, 0.5)), p99: ms(percentile(xs, 0.99)), max: ms(xs[xs.length - 1]) });
    let version = '';
    try { version = execFileSync(LATCHKEY_BIN, ['--version'], { encoding: 'utf8' }).trim(); } catch { /* optional */ }
    let postgres = '';
    try { postgres = execFileSync('psql', ['-X', '-At', '-d', ADMIN_URL, '-c', 'SHOW server_version'], { encoding: 'utf8' }).trim(); } catch { /* optional */ }
    const profile = /[\\/]release[\\/]/.test(LATCHKEY_BIN) ? 'release' : /[\\/]debug[\\/]/.test(LATCHKEY_BIN) ? 'debug' : 'unknown';
    const report = {
      what: 'ms from the revoke\'s 204 (as returned by the official client, through the proxy) to the first ' +
        'active:false from the private listener of each node that did not serve the revoke; each figure ' +
        'includes one introspection round trip (introspection reads the database: no token cache)',
      revokes: REVOKES,
      visibility_per_other_node_ms: summary(visibility),
      visibility_on_all_other_nodes_ms: summary(onAllOthers),
      introspection_round_trip_live_token_ms: summary(roundTrips),
      introspections_after_204: polls,
      introspections_after_204_that_said_active: polls - visibility.length,
      binary: { path: LATCHKEY_BIN, profile, version, built: fs.statSync(LATCHKEY_BIN).mtime.toISOString() },
      postgres: { version: postgres, url_host: new URL(ADMIN_URL).host },
      machine: {
        cpu: os.cpus()[0]?.model, cpus: os.cpus().length, memory_gb: Math.round(os.totalmem() / 2 ** 30),
        os: `${os.type()} ${os.release()} ${os.arch()}`, node: process.version
      }
    };
    assert.equal(report.introspections_after_204_that_said_active, 0, 'a revoked token was active on another node after the 204');
    const file = saveLog('revocation-visibility.json', `${JSON.stringify(report, null, 2)}\n`);
    console.log(`revocation visible on each other node (ms): ${JSON.stringify(report.visibility_per_other_node_ms)}; ` +
      `on all other nodes: ${JSON.stringify(report.visibility_on_all_other_nodes_ms)}; ` +
      `baseline introspection round trip: ${JSON.stringify(report.introspection_round_trip_live_token_ms)} (${file})`);
  });

  it('the proxy spread the requests over all three nodes, and each node cached the client\'s keys', () => {
    const served = proxy.servedPerNode();
    const total = served.reduce((x, y) => x + y, 0);
    console.log(`requests per node through the proxy: ${JSON.stringify(served)} (total ${total}); ` +
      `jwks fetches: ${wallets.fetchesOf('/alice/jwks.json').length}`);
    assert.equal(served.length, 3);
    for (const [k, n] of served.entries()) {
      // Round robin per request: every node gets a third, give or take one.
      assert.ok(Math.abs(n - total / 3) <= 1, `node ${k} served ${n} of ${total} requests`);
    }
    assert.ok(proxy.log.every((e) => e.status !== null && e.status < 500), 'no request failed at the proxy or a node');
    // Keys are cached per node (LISTEN/NOTIFY keeps the cache trusted): nowhere near one fetch per signed request.
    const fetches = wallets.fetchesOf('/alice/jwks.json').length;
    assert.ok(fetches >= 3 && fetches <= 9, `alice's jwks.json was fetched ${fetches} times for ${total} signed requests`);
  });
});
