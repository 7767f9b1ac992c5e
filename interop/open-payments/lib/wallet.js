// A tiny Open Payments wallet-address server for the interop tests.
//
// Serves, for every registered wallet `name`:
//   GET /{name}            -> wallet address document (wallet-address-server.yaml `wallet-address`)
//   GET /{name}/jwks.json  -> JSON Web Key Set with the wallet's Ed25519 public keys
// Everything else is 404. Every request is recorded in `requests` so tests can
// check that the authorization server really fetched the client's keys.

import http from 'node:http';
import { generateJwk, generateKey } from '@interledger/http-signature-utils';

/**
 * A client identity: an Ed25519 private key plus the JWK published for it.
 * `publish: false` gives a key that no wallet address lists (for wrong-key tests).
 */
export function makeKey(keyId) {
  const privateKey = generateKey();
  const jwk = generateJwk({ privateKey, keyId });
  return { keyId, privateKey, jwk };
}

export async function startWalletServer({ host = '127.0.0.1' } = {}) {
  const wallets = new Map(); // name -> { publicName, assetCode, assetScale, keys: [jwk] }
  const requests = [];
  let authServer = null;
  let baseUrl = null;

  const send = (res, status, body) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store'
    });
    res.end(text);
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, baseUrl);
    requests.push({ method: req.method, path: url.pathname, at: Date.now() });
    req.resume();
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method not allowed' });
    const m = /^\/([A-Za-z0-9_-]+)(\/jwks\.json)?$/.exec(url.pathname);
    const wallet = m && wallets.get(m[1]);
    if (!wallet) return send(res, 404, { error: 'not found' });
    if (m[2]) return send(res, 200, { keys: wallet.keys });
    if (!authServer) return send(res, 503, { error: 'authServer not configured yet' });
    return send(res, 200, {
      id: `${baseUrl}/${m[1]}`,
      publicName: wallet.publicName,
      assetCode: wallet.assetCode,
      assetScale: wallet.assetScale,
      authServer,
      resourceServer: `${baseUrl}/rs`
    });
  });
  // Keep-alive sockets must not keep the test process alive after close().
  server.keepAliveTimeout = 1000;

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  baseUrl = `http://${host}:${server.address().port}`;

  return {
    get baseUrl() { return baseUrl; },
    requests,
    /** The URL every wallet advertises as `authServer` (latchkey's PUBLIC_URL). */
    setAuthServer(url) { authServer = url; },
    /** Register a wallet address; returns its URL (the `id`). */
    addWallet(name, { keys, publicName = name, assetCode = 'USD', assetScale = 2 }) {
      wallets.set(name, { publicName, assetCode, assetScale, keys: keys.map((k) => k.jwk ?? k) });
      return `${baseUrl}/${name}`;
    },
    /** Replace the published keys of a wallet (key rotation at the wallet). */
    setKeys(name, keys) { wallets.get(name).keys = keys.map((k) => k.jwk ?? k); },
    /** Requests recorded for a path. */
    fetchesOf(path) { return requests.filter((r) => r.path === path); },
    async close() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
    }
  };
}
