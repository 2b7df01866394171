/**
 * probeTls (tls-probe.ts): the hand-written ClientHello that decides, for a loopback
 * registry, whether the HTTPS path (node:tls, and Node's root certificates when verifying)
 * is needed at all. Each answer a server can give, on 127.0.0.1: TLS servers of every
 * version this hello offers, plain-HTTP servers that parse bytes or wait for a line end,
 * silence and hang-ups.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientHello, isTlsRecord, probeTls } from './tls-probe.ts';

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

function selfSigned(): { key: Buffer; cert: Buffer } {
  if (!existsSync(join(dir, 'c.pem'))) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' });
  }
  return { key: readFileSync(join(dir, 'k.pem')), cert: readFileSync(join(dir, 'c.pem')) };
}

test('TLS 1.3-only and TLS 1.2-only servers are tls (a HelloRetryRequest, a ServerHello or an alert is a TLS record)', async () => {
  const v13 = await listen(createTlsServer({ ...selfSigned(), minVersion: 'TLSv1.3' }, (c) => c.end()));
  assert.equal(await probeTls('127.0.0.1', v13, 2000), 'tls');
  const v12 = await listen(createTlsServer({ ...selfSigned(), maxVersion: 'TLSv1.2' }, (c) => c.end()));
  assert.equal(await probeTls('127.0.0.1', v12, 2000), 'tls');
  const ecdsa = await listen(createTlsServer({ ...selfSigned(), ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2' }, (c) => c.end()));
  assert.equal(await probeTls('127.0.0.1', ecdsa, 2000), 'tls');
});

test('a plain-HTTP server that reads whole lines (Go, Python) answers the hello at once: plain', async () => {
  // answers only once it has seen an empty line, as a line-based HTTP parser would
  const port = await listen(createTcpServer((c) => {
    let seen = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      seen = Buffer.concat([seen, d]);
      if (seen.includes('\r\n\r\n')) c.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    });
    c.on('error', () => {});
  }));
  const t0 = Date.now();
  assert.equal(await probeTls('127.0.0.1', port, 5000), 'plain');
  assert.ok(Date.now() - t0 < 1000, 'the answer came without waiting for the timeout');
});

test('the hello: consistent record and handshake lengths, CR LF CR LF early, SNI for names only', () => {
  const h = clientHello('registry.example');
  assert.equal(h[0], 0x16);
  assert.equal(h.readUInt16BE(3), h.length - 5, 'record length');
  assert.equal(h[5], 0x01, 'ClientHello');
  assert.equal(h.readUIntBE(6, 3), h.length - 9, 'handshake length');
  assert.equal(h.indexOf('\r\n\r\n'), 11, 'the random starts with an empty line');
  assert.ok(h.includes(Buffer.from('registry.example')));
  assert.ok(!clientHello('127.0.0.1').includes(Buffer.from('127.0.0.1')));
  assert.ok(!clientHello('::1').includes(Buffer.from('::1')));
  assert.ok(isTlsRecord(Buffer.from([0x16, 0x03])) && isTlsRecord(Buffer.from([0x15, 0x03])));
  assert.ok(!isTlsRecord(Buffer.from('HTTP/1.1 400')));
});
