import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { isBerthError, type ErrorCode } from '../base/errors.ts';
import { sha256, type Digest } from '../base/digest.ts';
import { MT } from '../oci/media-types.ts';
import { RegistryClient } from './client.ts';
import { useFakeServers, sendJSON, registryError, type FakeServer } from './fake-server.ts';
import type { RegistryClientOptions } from './types.ts';

const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: {}, layers: [] }));
const MANIFEST_DIGEST = sha256(MANIFEST);
const BLOB = Buffer.from('0123456789abcdefghij');
const BLOB_DIGEST = sha256(BLOB);

const { server, track } = useFakeServers();

function client(opts: RegistryClientOptions = {}): { c: RegistryClient; sleeps: number[] } {
  const sleeps: number[] = [];
  const c = new RegistryClient({ sleep: async (ms) => { sleeps.push(ms); }, ...opts });
  track(c);
  return { c, sleeps };
}

function sendManifest(res: import('node:http').ServerResponse, body = MANIFEST, headers: Record<string, string> = {}): void {
  res.writeHead(200, { 'content-type': MT.ociManifest, 'docker-content-digest': sha256(body), ...headers });
  res.end(body);
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, includes?: string | RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isBerthError(e, code), `expected ${code}, got ${String((e as { code?: string }).code)}: ${String(e)}`);
    if (typeof includes === 'string') assert.ok(e.message.includes(includes), e.message);
    else if (includes) assert.match(e.message, includes);
    return true;
  });
}

test('manifest by tag: media type, digest from bytes, Accept header', async () => {
  const s = await server((req, res) => sendManifest(res));
  const { c } = client();
  const m = await c.getManifest({ registry: s.host, repository: 'lib/app' }, 'v1');
  assert.equal(m.mediaType, MT.ociManifest);
  assert.equal(m.digest, MANIFEST_DIGEST);
  assert.deepEqual(m.bytes, MANIFEST);
  const req = s.requests.at(-1)!;
  assert.equal(req.url, '/v2/lib/app/manifests/v1');
  for (const mt of [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest]) assert.ok(req.headers.accept?.includes(mt));
});

test('manifest by digest that does not hash to it -> DIGEST_MISMATCH', async () => {
  const s = await server((req, res) => sendManifest(res, MANIFEST, { 'docker-content-digest': '' }));
  const { c } = client();
  const wrong = `sha256:${'0'.repeat(64)}` as Digest;
  await rejectsWith(c.getManifest({ registry: s.host, repository: 'app' }, wrong), 'DIGEST_MISMATCH', wrong);
  // and the right digest is accepted
  const m = await c.getManifest({ registry: s.host, repository: 'app' }, MANIFEST_DIGEST);
  assert.equal(m.digest, MANIFEST_DIGEST);
});

test('manifest by tag with a lying Docker-Content-Digest -> DIGEST_MISMATCH', async () => {
  const s = await server((req, res) => sendManifest(res, MANIFEST, { 'docker-content-digest': `sha256:${'1'.repeat(64)}` }));
  const { c } = client();
  await rejectsWith(c.getManifest({ registry: s.host, repository: 'app' }, 'latest'), 'DIGEST_MISMATCH');
});

test('schema 1 and unknown media types -> UNSUPPORTED naming the type', async () => {
  const s = await server((req, res) => {
    if (req.url.endsWith('/old')) {
      res.writeHead(200, { 'content-type': MT.dockerSchema1Signed });
      res.end(JSON.stringify({ schemaVersion: 1 }));
    } else if (req.url.endsWith('/generic')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ schemaVersion: 2, mediaType: MT.dockerList, manifests: [] }));
    } else {
      res.writeHead(200, { 'content-type': 'application/vnd.example+json' });
      res.end('{}');
    }
  });
  const { c } = client();
  await rejectsWith(c.getManifest({ registry: s.host, repository: 'app' }, 'old'), 'UNSUPPORTED', MT.dockerSchema1Signed);
  await rejectsWith(c.getManifest({ registry: s.host, repository: 'app' }, 'x'), 'UNSUPPORTED', 'application/vnd.example+json');
  const m = await c.getManifest({ registry: s.host, repository: 'app' }, 'generic');
  assert.equal(m.mediaType, MT.dockerList);
});

test('404 with MANIFEST_UNKNOWN body -> MANIFEST_UNKNOWN naming host/repo:tag', async () => {
  const s = await server((req, res) => sendJSON(res, 404, registryError('MANIFEST_UNKNOWN', 'manifest unknown')));
  const { c, sleeps } = client();
  await rejectsWith(c.getManifest({ registry: s.host, repository: 'app' }, 'nope'), 'MANIFEST_UNKNOWN', `repository or tag not found: ${s.host}/app:nope`);
  assert.equal(sleeps.length, 0);
  await rejectsWith(c.fetchBlob({ registry: s.host, repository: 'app' }, { digest: BLOB_DIGEST, size: 1 }), 'MANIFEST_UNKNOWN', `blob not found: ${s.host}/app@${BLOB_DIGEST}`);
});

test('429 with Retry-After: 1, then success', async () => {
  let n = 0;
  const s = await server((req, res) => {
    if (n++ === 0) sendJSON(res, 429, registryError('TOOMANYREQUESTS'), { 'retry-after': '1' });
    else sendManifest(res);
  });
  const { c, sleeps } = client();
  const m = await c.getManifest({ registry: s.host, repository: 'app' }, 'v1');
  assert.equal(m.digest, MANIFEST_DIGEST);
  assert.deepEqual(sleeps, [1000]);
});

test('Retry-After is capped', async () => {
  let n = 0;
  const s = await server((req, res) => {
    if (n++ === 0) sendJSON(res, 503, {}, { 'retry-after': '86400' });
    else sendManifest(res);
  });
  const { c, sleeps } = client({ retryMaxDelayMs: 5000 });
  await c.getManifest({ registry: s.host, repository: 'app' }, 'v1');
  assert.deepEqual(sleeps, [5000]);
});

test('500 then success', async () => {
  let n = 0;
  const s = await server((req, res) => (n++ === 0 ? sendJSON(res, 500, 'oops') : sendManifest(res)));
  const { c, sleeps } = client();
  assert.equal((await c.getManifest({ registry: s.host, repository: 'app' }, 'v1')).digest, MANIFEST_DIGEST);
  assert.equal(sleeps.length, 1);
  assert.ok(sleeps[0]! >= 200 && sleeps[0]! < 400, `first backoff ${sleeps[0]}`);
});

test('persistent 500 -> REGISTRY_ERROR with status after retries', async () => {
  const s = await server((req, res) => sendJSON(res, 500, registryError('UNKNOWN', 'boom')));
  const { c, sleeps } = client({ retries: 3 });
  await rejectsWith(c.getManifest({ registry: s.host, repository: 'app' }, 'v1'), 'REGISTRY_ERROR', 'HTTP 500');
  assert.equal(s.requests.length, 4);
  assert.equal(sleeps.length, 3);
  assert.ok(sleeps[2]! > sleeps[0]!, 'exponential backoff');
});

test('connection refused (closed port) -> CONNECTION_REFUSED naming host:port', async () => {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((r) => probe.close(() => r()));
  const { c } = client();
  await rejectsWith(c.getManifest({ registry: `127.0.0.1:${port}`, repository: 'app' }, 'v1'), 'CONNECTION_REFUSED', `127.0.0.1:${port}`);
});

test('unknown host -> UNKNOWN_HOST naming the host', async () => {
  const { c } = client();
  await rejectsWith(c.getManifest({ registry: 'no-such-registry.invalid', repository: 'app' }, 'v1'), 'UNKNOWN_HOST', 'no-such-registry.invalid');
});

test('blob: full body, then Range resume answered 206', async () => {
  const s = await server((req, res) => {
    const m = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
    if (m) {
      const from = Number(m[1]);
      res.writeHead(206, { 'content-range': `bytes ${from}-${BLOB.length - 1}/${BLOB.length}`, 'content-length': String(BLOB.length - from) });
      res.end(BLOB.subarray(from));
    } else {
      res.writeHead(200, { 'content-length': String(BLOB.length) });
      res.end(BLOB);
    }
  });
  const { c } = client();
  const loc = { registry: s.host, repository: 'app' };
  const full = await c.fetchBlob(loc, { digest: BLOB_DIGEST, size: BLOB.length });
  assert.equal(full.start, 0);
  assert.deepEqual(Buffer.concat(await full.body.toArray()), BLOB);
  const part = await c.fetchBlob(loc, { digest: BLOB_DIGEST, size: BLOB.length }, { offset: 7 });
  assert.equal(part.start, 7);
  assert.deepEqual(Buffer.concat(await part.body.toArray()), BLOB.subarray(7));
  assert.equal(s.requests.at(-1)!.headers.range, 'bytes=7-');
  assert.equal(s.requests.at(-1)!.url, `/v2/app/blobs/${BLOB_DIGEST}`);
});

test('blob: server ignoring Range -> start 0', async () => {
  const s = await server((req, res) => { res.writeHead(200); res.end(BLOB); });
  const { c } = client();
  const r = await c.fetchBlob({ registry: s.host, repository: 'app' }, { digest: BLOB_DIGEST, size: BLOB.length }, { offset: 5 });
  assert.equal(r.start, 0);
  assert.deepEqual(Buffer.concat(await r.body.toArray()), BLOB);
});

test('redirect to plain HTTP on a non-loopback host -> INSECURE_BLOCKED', async () => {
  const s = await server((req, res) => { res.writeHead(307, { location: 'http://cdn.example.invalid/blob' }); res.end(); });
  const { c } = client();
  await rejectsWith(c.fetchBlob({ registry: s.host, repository: 'app' }, { digest: BLOB_DIGEST, size: 1 }), 'INSECURE_BLOCKED', 'cdn.example.invalid');
});

test('abort signal cancels a retry wait', async () => {
  const s = await server((req, res) => sendJSON(res, 503, {}));
  const ac = new AbortController();
  const { c } = client({ sleep: (_ms, signal) => { ac.abort(); return Promise.reject(signal?.reason); } });
  await rejectsWith(c.getManifest({ registry: s.host, repository: 'app' }, 'v1', { signal: ac.signal }), 'CANCELLED');
});
