// A small round-robin HTTP reverse proxy: the "load balancer" in front of the nodes' public listeners.
//
// Every request (not every connection: the official client keeps connections alive) goes to the
// next target in turn. Method, path, query, headers and body are forwarded unchanged, Host
// included, so what the node sees is what the client signed against `--public-url` (the proxy).
// Each answer carries `x-cluster-node: <index>`, and every request is logged with the node that
// served it, so tests can check both the spread and which node handled a given call.

import http from 'node:http';

// Hop-by-hop headers (RFC 9110 section 7.6.1) are not forwarded.
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
  'proxy-authenticate', 'proxy-authorization'
]);

function forwardable(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(k.toLowerCase())) out[k] = v;
  }
  return out;
}

export async function startProxy({ host = '127.0.0.1' } = {}) {
  let targets = []; // [{ index, url: URL }]
  let next = 0;
  const log = []; // { seq, method, path, node, status, at }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  const server = http.createServer((req, res) => {
    if (targets.length === 0) {
      req.resume();
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('proxy: no targets yet');
      return;
    }
    const target = targets[next++ % targets.length];
    const entry = { seq: log.length, method: req.method, path: req.url, node: target.index, status: null, at: Date.now() };
    log.push(entry);
    const upstream = http.request(
      {
        agent,
        host: target.url.hostname,
        port: target.url.port,
        method: req.method,
        path: req.url,
        headers: forwardable(req.headers)
      },
      (up) => {
        entry.status = up.statusCode;
        res.writeHead(up.statusCode, { ...forwardable(up.headers), 'x-cluster-node': String(target.index) });
        up.pipe(res);
      }
    );
    upstream.on('error', (e) => {
      entry.status = 502;
      entry.error = e.message;
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`proxy: node ${target.index} unreachable: ${e.message}`);
      } else {
        res.destroy(e);
      }
    });
    req.pipe(upstream);
  });
  server.keepAliveTimeout = 1000;

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const url = `http://${host}:${server.address().port}`;

  return {
    url,
    log,
    /** The nodes' public URLs, in node order. Until set, the proxy answers 503. */
    setTargets(urls) {
      targets = urls.map((u, index) => ({ index, url: new URL(u) }));
    },
    /** Requests served per node index. */
    servedPerNode() {
      const counts = targets.map(() => 0);
      for (const e of log) counts[e.node] += 1;
      return counts;
    },
    /** Log entries for requests whose method and path match. */
    find(method, path) {
      return log.filter((e) => e.method === method && e.path === path);
    },
    async close() {
      server.closeAllConnections?.();
      agent.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    }
  };
}
