'use strict'
// Runs the real `latchkey` binary for the node:test interop suite.
// LATCHKEY_BIN: binary path (default ../../target/debug/latchkey relative to interop/kopokopo).
// LATCHKEY_STARTUP_TIMEOUT: seconds to wait for READY=1 (default 30).

const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const readline = require('node:readline')
const crypto = require('node:crypto')

const HERE = path.resolve(__dirname, '..')
const ARTIFACTS = path.join(HERE, 'artifacts', 'node')

// Never route 127.0.0.1 through a proxy from the environment (axios honours NO_PROXY).
for (const v of ['NO_PROXY', 'no_proxy']) {
  process.env[v] = [process.env[v], '127.0.0.1', 'localhost'].filter(Boolean).join(',')
}

function latchkeyBin () {
  return path.resolve(process.env.LATCHKEY_BIN || path.join(HERE, '..', '..', 'target', 'debug', 'latchkey'))
}

function tail (file, n = 40) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n')
  } catch {
    return '<no log>'
  }
}

async function startServer () {
  const bin = latchkeyBin()
  try {
    fs.accessSync(bin, fs.constants.X_OK)
  } catch {
    throw new Error(`latchkey binary not found or not executable at ${bin} (build it first or set LATCHKEY_BIN)`)
  }
  fs.rmSync(ARTIFACTS, { recursive: true, force: true })
  fs.mkdirSync(ARTIFACTS, { recursive: true })
  const dbPath = path.join(ARTIFACTS, 'latchkey.db')
  const databaseUrl = `sqlite://${dbPath}` // sqlite:///abs/path/latchkey.db
  const stderrPath = path.join(ARTIFACTS, 'serve.stderr.log')
  const args = ['serve', '--dev', '--listen', '127.0.0.1:0', '--private-listen', '127.0.0.1:0', '--database', databaseUrl]
  const stderrFd = fs.openSync(stderrPath, 'w')
  const env = { ...process.env, NO_COLOR: '1' } // plain-text logs in artifacts/
  const child = spawn(bin, args, { cwd: ARTIFACTS, env, stdio: ['ignore', 'pipe', stderrFd] })
  fs.closeSync(stderrFd)
  const stdoutLog = fs.createWriteStream(path.join(ARTIFACTS, 'serve.stdout.log'))
  const info = {}
  const timeoutMs = 1000 * Number(process.env.LATCHKEY_STARTUP_TIMEOUT || 30)
  const cmd = `${bin} ${args.join(' ')}`

  await new Promise((resolve, reject) => {
    let settled = false
    const finish = (err) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err) {
        child.kill('SIGKILL')
        reject(err)
      } else {
        resolve()
      }
    }
    const timer = setTimeout(() => finish(new Error(
      `latchkey serve did not print READY=1 within ${timeoutMs / 1000}s: ${cmd}\n` +
      `stdout so far: ${JSON.stringify(info)}\n--- stderr tail ---\n${tail(stderrPath)}`)), timeoutMs)
    child.on('error', (err) => finish(err))
    child.on('exit', (code, signal) => finish(new Error(
      `latchkey serve exited (code ${code}, signal ${signal}) before READY=1: ${cmd}\n` +
      `stdout: ${JSON.stringify(info)}\n--- stderr tail ---\n${tail(stderrPath)}`)))
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      stdoutLog.write(line + '\n')
      const i = line.indexOf('=')
      if (i > 0) info[line.slice(0, i).trim()] = line.slice(i + 1).trim()
      if (info.READY === '1') {
        if (!info.PUBLIC_URL) finish(new Error(`READY=1 without PUBLIC_URL: ${JSON.stringify(info)}`))
        else finish()
      }
    })
  })

  return {
    info,
    url: info.PUBLIC_URL.replace(/\/+$/, ''),
    databaseUrl,
    stderrPath,
    createClient (scopes = []) {
      const name = `k2-node-interop-${crypto.randomBytes(4).toString('hex')}`
      const cargs = ['oauth-client', 'create', '--name', name]
      for (const s of scopes) cargs.push('--scope', s)
      cargs.push('--database', databaseUrl)
      let out
      try {
        out = execFileSync(bin, cargs, { cwd: ARTIFACTS, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 })
      } catch (err) {
        throw new Error(`${bin} ${cargs.join(' ')} failed (${err.status}):\nstdout: ${err.stdout}\nstderr: ${err.stderr}`)
      }
      let creds
      try {
        creds = JSON.parse(out)
      } catch (err) {
        throw new Error(`\`oauth-client create\` stdout is not a JSON document (${err.message}): ${JSON.stringify(out)}`)
      }
      if (!creds || typeof creds.client_id !== 'string' || typeof creds.client_secret !== 'string' ||
          !creds.client_id || !creds.client_secret) {
        throw new Error(`\`oauth-client create\` JSON lacks client_id/client_secret strings: ${out}`)
      }
      return { clientId: creds.client_id, clientSecret: creds.client_secret, name }
    },
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 10000)
      await exited
      clearTimeout(t)
      stdoutLog.end()
    }
  }
}

module.exports = { startServer, tail }
