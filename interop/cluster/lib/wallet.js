// The client's wallet-address server (the same contract as interop/open-payments/lib/wallet.js,
// kept here so this suite resolves its npm imports from its own node_modules):
//   GET /{name}            -> wallet address document, `authServer` = the proxy
//   GET /{name}/jwks.json  -> the wallet's Ed25519 public keys
// Every request is recorded, so tests can see which node fetched the keys how often.

import http from 'node:http';
import { generateJwk, generateKey } from '@interledger/http-signature-utils';

/** An Ed25519 private key plus the JWK published for it. */
export function makeKey(keyId) {
  const privateKey = generateKey();
  return { keyId, privateKey, jwk: generateJwk({ privateKey, keyId }) };
}

export async function startWalletServer({ host = '127.0.0.1' } = {}) {
  const wallets = new Map(); // name -> { publicName, keys: [jwk] }
  const requests = [];
  let authServer = null;
  let baseUrl = null;

  const send = (res, status, body) => {
    const text = JSON.stringify(body);
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
    const m = /^\/([A-Za-z0-9_-]+)(\/jwks\.json)?$/.exec(url.pathname);
    const wallet = req.method === 'GET' && m && wallets.get(m[1]);
    if (!wallet) return send(res, 404, { error: 'not found' });
    if (m[2]) return send(res, 200, { keys: wallet.keys });
    return send(res, 200, {
      id: `${baseUrl}/${m[1]}`,
      publicName: wallet.publicName,
      assetCode: 'USD',
      assetScale: 2,
      authServer,
      resourceServer: `${baseUrl}/rs`
    });
  });
  server.keepAliveTimeout = 1000;

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  baseUrl = `http://${host}:${server.address().port}`;

  return {
    get baseUrl() { return baseUrl; },
    requests,
    setAuthServer(url) { authServer = url; },
    addWallet(name, { keys, publicName = name }) {
      wallets.set(name, { publicName, keys: keys.map((k) => k.jwk) });
      return `${baseUrl}/${name}`;
    },
    fetchesOf(path) { return requests.filter((r) => r.path === path); },
    async close() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
    }
  };
}
