// A Latchkey cluster for one test file: a fresh PostgreSQL database, `latchkey migrate` once,
// N `latchkey serve --dev` nodes sharing it, all advertising the round-robin proxy as their
// public URL, and the client's wallet-address server pointing at that proxy.
//
// PostgreSQL: LATCHKEY_TEST_POSTGRES_URL (as for the Rust tests), default
// postgres://postgres@127.0.0.1:5432/postgres; the database is created with psql and dropped
// (WITH (FORCE)) at the end, or at process exit if the test died first.

import { execFile, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
// Only node built-ins inside: safe to share with the single-node suite.
import { assertBinary, LATCHKEY_BIN, startLatchkey } from '../../open-payments/lib/latchkey.js';
import { startProxy } from './proxy.js';
import { startWalletServer } from './wallet.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FOLDER = path.resolve(HERE, '..');
const run = promisify(execFile);

export const ADMIN_URL = process.env.LATCHKEY_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

function databaseUrl(name) {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

const psqlArgs = (sql) => ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', ADMIN_URL, '-c', sql];

/** Environment without the developer's LATCHKEY_* settings. */
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LATCHKEY_')));
}

export function saveLog(name, text) {
  const dir = path.join(FOLDER, 'artifacts');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** A free loopback port (bound and released; the caller retries if someone takes it meanwhile). */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * One node. With --public-url set, the node prints that URL as PUBLIC_URL, not the address it
 * bound, so the public port is chosen here (free port, retried if taken meanwhile) to give the
 * proxy somewhere to forward to. The private listener keeps port 0 (PRIVATE_URL is the bound one).
 */
async function startNode({ database, publicUrl, dir }) {
  for (let attempt = 1; ; attempt++) {
    const listen = `127.0.0.1:${await freePort()}`;
    try {
      const node = await startLatchkey({
        database,
        listen,
        publicUrl,
        workDir: dir,
        extraArgs: ['--data-dir', path.join(dir, 'data')]
      });
      node.listenUrl = `http://${listen}`;
      return node;
    } catch (e) {
      if (attempt >= 5 || !/address already in use|EADDRINUSE|os error 98/i.test(e.message)) throw e;
    }
  }
}

export async function startCluster({ size = 3, name = 'cluster' } = {}) {
  assertBinary();
  const dbName = `latchkey_cluster_${crypto.randomBytes(6).toString('hex')}`;
  const dbUrl = databaseUrl(dbName);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'latchkey-cluster-'));
  const nodes = [];
  let proxy = null;
  let wallets = null;
  let dropped = false;

  const drop = () => {
    if (dropped) return;
    dropped = true;
    try {
      execFileSync('psql', psqlArgs(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`), { stdio: 'pipe' });
    } catch { /* best effort at exit */ }
  };
  const onExit = () => drop();
  process.on('exit', onExit);

  const teardown = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    nodes.forEach((n, i) => saveLog(`${name}-node${i}.latchkey.stderr.log`, n.stderr()));
    if (proxy) await proxy.close();
    if (wallets) await wallets.close();
    if (!dropped) {
      dropped = true;
      await run('psql', psqlArgs(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));
    }
    process.off('exit', onExit);
    fs.rmSync(workDir, { recursive: true, force: true });
  };

  try {
    await run('psql', psqlArgs(`CREATE DATABASE ${dbName}`));
    await run(LATCHKEY_BIN, ['migrate', '--database', dbUrl], { env: cleanEnv(), cwd: workDir });

    // The proxy first: its URL is every node's --public-url (manage and continue URLs point at
    // it, and the @target-uri the client signs is rebuilt from it on whichever node answers).
    proxy = await startProxy();
    wallets = await startWalletServer();
    wallets.setAuthServer(proxy.url);

    const started = await Promise.allSettled(
      Array.from({ length: size }, (_, i) => {
        const dir = path.join(workDir, `node${i}`);
        fs.mkdirSync(dir, { recursive: true });
        return startNode({ database: dbUrl, publicUrl: proxy.url, dir });
      })
    );
    nodes.push(...started.filter((r) => r.status === 'fulfilled').map((r) => r.value));
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    proxy.setTargets(nodes.map((n) => n.listenUrl));
  } catch (e) {
    await teardown().catch(() => {});
    throw e;
  }

  return { dbName, dbUrl, nodes, proxy, wallets, teardown };
}
