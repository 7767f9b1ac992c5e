// Harness for the browser test: headless Chromium (Debian's `chromium` package) through
// playwright-core, a tiny HTTP server standing in for the client's finish URI, the interaction
// hash, and introspection.
//
// The latchkey process itself is started with ../../open-payments/lib/latchkey.js (Node built-ins
// only, so it needs nothing from that folder's node_modules).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const FOLDER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ARTIFACTS = path.join(FOLDER, 'artifacts');
export const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/** Flags for a quiet, reproducible headless Chromium that talks to nothing but the test servers. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // CI containers often have a 64 MB /dev/shm; Debian's wrapper means to add this flag then, but
  // its check misparses findmnt on some hosts. Shared memory in /tmp is fine for a test.
  '--disable-dev-shm-usage'
];

/**
 * Launch Chromium with a fresh user-data-dir (so no cookie or cache survives between runs).
 * `contextOptions` are Playwright context options (viewport, isMobile, javaScriptEnabled...).
 * Returns {context, page, close()}; close() also removes the profile directory.
 */
export async function launchBrowser(contextOptions = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: run ./run.sh (installs Debian's chromium) or set CHROMIUM_BIN`);
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'latchkey-chromium-'));
  let context;
  try {
    // Playwright passes userDataDir as --user-data-dir itself (it refuses the flag in `args`).
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 30000,
      ...contextOptions
    });
  } catch (e) {
    fs.rmSync(userDataDir, { recursive: true, force: true });
    throw e;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(10000);
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => {});
      fs.rmSync(userDataDir, { recursive: true, force: true });
    }
  };
}

/**
 * The client's web site on 127.0.0.1:0. `/callback/...` is the finish URI: it records every
 * request and answers a small "you may close this window" page, as a web client's callback would.
 * `/frame?src=URL` is a page that puts URL in an iframe (a client trying to clickjack the consent
 * page); it is not recorded.
 */
export async function startFinishServer() {
  const hits = [];
  const escapeAttr = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, base);
    req.resume();
    let body;
    if (url.pathname === '/frame') {
      body = `<!doctype html><title>Framing attempt</title><iframe id="victim" src="${escapeAttr(url.searchParams.get('src') ?? '')}" width="600" height="600"></iframe>`;
    } else {
      hits.push({ method: req.method, url: url.href, at: Date.now() });
      body = '<!doctype html><title>Back at the client</title><p>Thanks, you can close this window.</p>';
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 1000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    hits,
    /** A distinct callback URL per run, with a query of its own that must survive the redirect. */
    url: (run) => `${base}/callback/${run}?client_state=${run}`,
    frameUrl: (src) => `${base}/frame?src=${encodeURIComponent(src)}`,
    async close() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
    }
  };
}

/**
 * RFC 9635 §4.2.3 interaction hash as the Open Payments clients check it: SHA-256 over
 * "client nonce \n server nonce (interact.finish) \n interact_ref \n grant endpoint URL",
 * standard base64 with padding.
 */
export function interactionHash(clientNonce, serverNonce, interactRef, grantEndpoint) {
  return crypto
    .createHash('sha256')
    .update(`${clientNonce}\n${serverNonce}\n${interactRef}\n${grantEndpoint}`)
    .digest('base64');
}

/** GNAP token introspection on the private listener (resource-server view). */
export async function introspect(privateUrl, accessToken) {
  const res = await fetch(`${privateUrl}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ access_token: accessToken })
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`introspection answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

export function artifact(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

/** A PNG file that is really there and not empty. */
export function assertPng(file) {
  const bytes = fs.readFileSync(file);
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (bytes.length < 1000 || !bytes.subarray(0, 8).equals(signature)) {
    throw new Error(`${file} is not a plausible PNG screenshot (${bytes.length} bytes)`);
  }
  return bytes.length;
}
