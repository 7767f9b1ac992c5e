'use strict'
// Interop: npm k2-connect-node 1.3.0 (Kopo Kopo's Node SDK) against latchkey.
//
// SDK facts this relies on (see NOTES.md):
//  - getToken() resolves response.data; infoToken() resolves response.data.
//  - introspectToken() and revokeToken() resolve `response.body`, which axios never sets, so
//    they ALWAYS resolve undefined on 2xx. To still check what latchkey answered to the SDK's own
//    requests, we tap the exact axios module instance the SDK uses with interceptors.
//  - any 401 rejects with the bare string 'Unauthorized'; other errors reject with response.data.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { startServer, tail } = require('./harness')

const K2 = require('k2-connect-node')
// the axios module the SDK itself resolves (not whatever might be hoisted for us)
const sdkAxios = require(require.resolve('axios', { paths: [path.dirname(require.resolve('k2-connect-node'))] }))

const exchanges = []
sdkAxios.interceptors.response.use(
  (res) => { exchanges.push(res); return res },
  (err) => { if (err.response) exchanges.push(err.response); return Promise.reject(err) }
)
function lastExchange (urlSuffix) {
  const res = exchanges.filter((r) => r.config.url.endsWith(urlSuffix)).pop()
  assert.ok(res, `no HTTP exchange recorded for ${urlSuffix}`)
  return res
}
function header (res, name) {
  return res.config.headers[name] ?? res.config.headers.get?.(name)
}

let server
before(async () => { server = await startServer() })
after(async () => { if (server) await server.stop() })

function sdkFor (creds, secret) {
  return K2({
    clientId: creds.clientId,
    clientSecret: secret ?? creds.clientSecret,
    apiKey: 'unused-by-token-service', // required by the K2() constructor validation
    baseUrl: server.url // no trailing slash: the SDK appends "/oauth/..."
  }).TokenService
}

function withServerLog (fn) {
  return async (t) => {
    try {
      await fn(t)
    } catch (caught) {
      // the SDK rejects with bare strings ('Unauthorized') or response bodies, not Errors
      const err = caught instanceof Error ? caught : new Error(`SDK call rejected with ${JSON.stringify(caught)}`)
      const last = exchanges[exchanges.length - 1]
      if (last) {
        err.message += `\n--- last SDK HTTP exchange: ${String(last.config.method).toUpperCase()} ${last.config.url}` +
          ` -> ${last.status} ${JSON.stringify(last.data)}`
      }
      if (server) err.message += `\n--- latchkey serve stderr (tail) ---\n${tail(server.stderrPath, 30)}`
      throw err
    }
  }
}

test('token, info, introspect, revoke, then the token is dead', withServerLog(async () => {
  const creds = server.createClient()
  const tokens = sdkFor(creds)

  const t0 = Math.floor(Date.now() / 1000)
  const tok = await tokens.getToken()
  assert.equal(typeof tok.access_token, 'string')
  assert.ok(tok.access_token.length > 0)
  assert.equal(tok.token_type, 'Bearer')
  assert.ok(Number.isInteger(tok.expires_in) && tok.expires_in > 60, `expires_in: ${tok.expires_in}`)
  assert.ok(Number.isInteger(tok.created_at) && Math.abs(tok.created_at - t0) < 60, `created_at: ${tok.created_at}`)
  assert.equal(typeof tok.scope, 'string')
  assert.match(String(header(lastExchange('/oauth/token'), 'Content-Type')), /^application\/x-www-form-urlencoded/)

  const info = await tokens.infoToken({ accessToken: tok.access_token })
  assert.deepEqual(info.application, { uid: creds.clientId })
  assert.ok(Array.isArray(info.scope), `token info scope must be an array: ${JSON.stringify(info)}`)
  assert.deepEqual([...info.scope].sort(), tok.scope.split(' ').filter(Boolean).sort())
  assert.ok(Number.isInteger(info.expires_in) && info.expires_in > 0 && info.expires_in <= tok.expires_in)
  assert.equal(info.created_at, tok.created_at)
  assert.equal(info.resource_owner_id, null)

  // introspectToken: JSON body + "Authorization: Bearer null"; SDK resolves undefined
  assert.equal(await tokens.introspectToken({ accessToken: tok.access_token }), undefined)
  let ex = lastExchange('/oauth/introspect')
  assert.equal(header(ex, 'Authorization'), 'Bearer null', 'SDK quirk the server must tolerate')
  assert.equal(ex.status, 200)
  assert.equal(ex.data.active, true, JSON.stringify(ex.data))
  assert.equal(ex.data.client_id, creds.clientId)
  assert.equal(ex.data.token_type, 'Bearer')
  assert.ok(Number.isInteger(ex.data.exp) && Number.isInteger(ex.data.iat), JSON.stringify(ex.data))

  // revokeToken: same JSON + Bearer null shape; SDK resolves undefined
  assert.equal(await tokens.revokeToken({ accessToken: tok.access_token }), undefined)
  ex = lastExchange('/oauth/revoke')
  assert.equal(header(ex, 'Authorization'), 'Bearer null')
  assert.equal(ex.status, 200)
  assert.deepEqual(ex.data, {})

  await tokens.introspectToken({ accessToken: tok.access_token })
  ex = lastExchange('/oauth/introspect')
  assert.equal(ex.status, 200)
  assert.equal(ex.data.active, false, JSON.stringify(ex.data))

  await assert.rejects(tokens.infoToken({ accessToken: tok.access_token }), (err) => err === 'Unauthorized')
  assert.equal(lastExchange('/oauth/token/info').status, 401)
}))

test('wrong secret is refused', withServerLog(async () => {
  const creds = server.createClient()
  await assert.rejects(sdkFor(creds, creds.clientSecret + 'x').getToken(), (err) => err === 'Unauthorized')
  const ex = lastExchange('/oauth/token')
  assert.equal(ex.status, 401)
  assert.equal(ex.data.error, 'invalid_client', JSON.stringify(ex.data))
  assert.equal(typeof ex.data.error_description, 'string')
  assert.ok(ex.headers['www-authenticate'], 'invalid_client 401 must carry WWW-Authenticate')
}))

test('revoking another client\'s token is a no-op 200', withServerLog(async () => {
  const owner = server.createClient()
  const other = server.createClient()
  const tok = await sdkFor(owner).getToken()

  await sdkFor(other).revokeToken({ accessToken: tok.access_token })
  assert.equal(lastExchange('/oauth/revoke').status, 200)

  const info = await sdkFor(owner).infoToken({ accessToken: tok.access_token })
  assert.deepEqual(info.application, { uid: owner.clientId })
}))

test('unknown token: revoke 200, introspect inactive, info 401', withServerLog(async () => {
  const tokens = sdkFor(server.createClient())
  await tokens.revokeToken({ accessToken: 'no-such-token' })
  assert.equal(lastExchange('/oauth/revoke').status, 200)
  await tokens.introspectToken({ accessToken: 'no-such-token' })
  assert.equal(lastExchange('/oauth/introspect').data.active, false)
  await assert.rejects(tokens.infoToken({ accessToken: 'no-such-token' }), (err) => err === 'Unauthorized')
}))
