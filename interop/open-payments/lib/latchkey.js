// Start / stop the real `latchkey` binary for a test.
//
// Contract: `latchkey serve --dev --listen A --private-listen B --database sqlite:///abs/file.db`
// prints `KEY=VALUE` lines on stdout, including PUBLIC_URL and PRIVATE_URL (bound ports), then
// `READY=1`; logs go to stderr; `GET {PRIVATE_URL}/healthz` answers 200 once ready.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const FOLDER = path.resolve(HERE, '..');

export const LATCHKEY_BIN = process.env.LATCHKEY_BIN
  ? path.resolve(process.cwd(), process.env.LATCHKEY_BIN)
  : path.resolve(FOLDER, '../../target/debug/latchkey');

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export function assertBinary() {
  if (!fs.existsSync(LATCHKEY_BIN)) {
    throw new Error(
      `latchkey binary not found at ${LATCHKEY_BIN}; build it (cargo build -p latchkey) or set LATCHKEY_BIN`
    );
  }
}

/** A fresh temporary directory with a database path inside. */
export function tempDatabase(prefix = 'latchkey-interop-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const file = path.join(dir, 'latchkey.db');
  return {
    dir,
    file,
    url: `sqlite://${file}`, // file is absolute, so this reads sqlite:///abs/path
    cleanup() { fs.rmSync(dir, { recursive: true, force: true }); }
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Spawn `latchkey serve --dev` and wait until it is ready.
 * Resolves to a handle with publicUrl, privateUrl, vars (all KEY=VALUE lines), pid,
 * stderr() (captured log tail), kill9() and stop().
 */
export async function startLatchkey({
  database,
  listen = '127.0.0.1:0',
  privateListen = '127.0.0.1:0',
  publicUrl,
  extraArgs = [],
  workDir,
  readyTimeoutMs = 20000
}) {
  assertBinary();
  const args = ['serve', '--dev', '--listen', listen, '--private-listen', privateListen, '--database', database];
  if (publicUrl) args.push('--public-url', publicUrl);
  args.push(...extraArgs);

  // A clean environment: no LATCHKEY_* settings of the developer's shell leak in (flags win over
  // env anyway, but e.g. LATCHKEY_CONFIG would add a file layer). The server runs in its own
  // working / data directory so sandbox files never land in the repository.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LATCHKEY_')));
  env.RUST_BACKTRACE = '1';
  // The most verbose logs, so the log-secrecy checks see everything the server could ever print.
  env.LATCHKEY_LOG = 'trace';
  if (workDir) env.LATCHKEY_DATA_DIR = path.join(workDir, 'data');
  const child = spawn(LATCHKEY_BIN, args, {
    cwd: workDir ?? os.tmpdir(),
    stdio: ['ignore', 'pipe', 'pipe'],
    env
  });
  live.add(child);

  let stderrBuf = '';
  let stdoutBuf = '';
  const vars = {};
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderrBuf += d;
    if (stderrBuf.length > 32_000_000) stderrBuf = stderrBuf.slice(-16_000_000);
  });

  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  let exitInfo = null;
  exited.then((info) => { exitInfo = info; });

  const describe = () =>
    `latchkey ${args.join(' ')}\n--- stdout ---\n${stdoutBuf}\n--- stderr (tail) ---\n${stderrBuf.slice(-4000)}`;

  const ready = new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8');
    let pending = '';
    child.stdout.on('data', (d) => {
      stdoutBuf += d;
      pending += d;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl).replace(/\r$/, '');
        pending = pending.slice(nl + 1);
        const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
        if (!m) continue;
        vars[m[1]] = m[2];
        if (m[1] === 'READY' && m[2] === '1') resolve();
      }
    });
    exited.then(({ code, signal }) =>
      reject(new Error(`latchkey exited before READY=1 (code ${code}, signal ${signal})\n${describe()}`))
    );
    child.once('error', (e) => reject(new Error(`cannot spawn latchkey: ${e.message}\n${describe()}`)));
  });

  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`latchkey not READY within ${readyTimeoutMs} ms\n${describe()}`)), readyTimeoutMs);
  });
  try {
    await Promise.race([ready, timeout]);
    for (const k of ['PUBLIC_URL', 'PRIVATE_URL']) {
      if (!vars[k]) throw new Error(`latchkey printed READY=1 without ${k}\n${describe()}`);
    }
    // READY=1 should already mean healthy; check the contract anyway.
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      let status = 0;
      try {
        status = (await fetch(`${vars.PRIVATE_URL}/healthz`)).status;
      } catch { /* not listening yet */ }
      if (status === 200) break;
      if (exitInfo) throw new Error(`latchkey exited while waiting for /healthz\n${describe()}`);
      if (Date.now() > deadline) throw new Error(`GET ${vars.PRIVATE_URL}/healthz never answered 200 (last ${status})\n${describe()}`);
      await sleep(50);
    }
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    throw e;
  } finally {
    clearTimeout(timer);
  }

  return {
    publicUrl: vars.PUBLIC_URL.replace(/\/$/, ''),
    privateUrl: vars.PRIVATE_URL.replace(/\/$/, ''),
    vars,
    pid: child.pid,
    args,
    stderr: () => stderrBuf,
    describe,
    get exitInfo() { return exitInfo; },
    /** SIGKILL, no chance to flush anything. Call synchronously right after a response. */
    kill9() {
      if (!exitInfo) child.kill('SIGKILL');
      return exited;
    },
    /** Graceful stop: SIGTERM, then SIGKILL after 3 s. */
    async stop() {
      if (exitInfo) return exitInfo;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      const info = await exited;
      clearTimeout(t);
      return info;
    }
  };
}

/**
 * Start latchkey on fixed addresses, retrying while the ports are still held by the
 * previous (killed) process.
 */
export async function restartLatchkey(opts, { attempts = 40, delayMs = 100 } = {}) {
  let last;
  for (let i = 0; i < attempts; i++) {
    try {
      return await startLatchkey(opts);
    } catch (e) {
      last = e;
      if (!/address already in use|EADDRINUSE|os error 98/i.test(e.message)) throw e;
      await sleep(delayMs);
    }
  }
  throw last;
}

/** Keep the server's log for a post-mortem in artifacts/ (git-ignored). */
export function saveLog(name, text) {
  const dir = path.join(FOLDER, 'artifacts');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.latchkey.stderr.log`);
  fs.writeFileSync(file, text);
  return file;
}

/** Every file under a directory (database, -wal, -shm, data dir...), concatenated, for plaintext-secret scans. */
export function readAllFiles(dir) {
  return Buffer.concat(
    fs.readdirSync(dir, { withFileTypes: true, recursive: true })
      .filter((e) => e.isFile())
      .map((e) => fs.readFileSync(path.join(e.parentPath ?? e.path, e.name)))
  );
}

/** `http://127.0.0.1:1234` -> `127.0.0.1:1234` */
export const hostPort = (url) => new URL(url).host;
