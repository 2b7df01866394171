/**
 * probeTls (http.ts): the bare handshake that decides, for a loopback registry with
 * verification on, whether the verified HTTPS path (and Node's root certificates) is
 * needed at all. Each answer a server can give, on 127.0.0.1.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeTls } from './http.ts';

const servers: Server[] = [];
let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-probe-tls-'));
});
after(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function listen(s: Server): Promise<number> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

test('a closed port is plain (the HTTP attempt reports the refusal)', async () => {
  const s = createTcpServer();
  const port = await listen(s);
  await new Promise<void>((r) => s.close(() => r()));
  assert.equal(await probeTls('127.0.0.1', port, 2000), 'plain');
});

test('a plain-HTTP server is plain', async () => {
  const port = await listen(createHttpServer((_q, res) => res.end('{}')));
  assert.equal(await probeTls('127.0.0.1', port, 2000), 'plain');
});

test('a TLS server with a self-signed certificate is tls (verification is left to the real request)', async () => {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' });
  const port = await listen(createHttpsServer({ key: readFileSync(join(dir, 'k.pem')), cert: readFileSync(join(dir, 'c.pem')) }, (_q, res) => res.end('{}')));
  assert.equal(await probeTls('127.0.0.1', port, 2000), 'tls');
});

test('a server that never answers, or hangs up at once, is unknown (the usual path decides)', async () => {
  const silent = await listen(createTcpServer(() => {}));
  assert.equal(await probeTls('127.0.0.1', silent, 300), 'unknown');
  const hangup = await listen(createTcpServer((c) => c.destroy()));
  assert.equal(await probeTls('127.0.0.1', hangup, 2000), 'unknown');
});
