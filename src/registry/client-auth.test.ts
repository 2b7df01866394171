import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError, type ErrorCode } from '../base/errors.ts';
import { sha256 } from '../base/digest.ts';
import { MT } from '../oci/media-types.ts';
import { RegistryClient } from './client.ts';
import { useFakeServers, sendJSON, registryError, type FakeServer, type SeenRequest } from './fake-server.ts';
import type { Credentials, RegistryClientOptions } from './types.ts';

const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: {}, layers: [] }));
const BLOB = Buffer.from('layer bytes');
const BLOB_DIGEST = sha256(BLOB);
const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

const { server, track } = useFakeServers();

function client(opts: RegistryClientOptions = {}): RegistryClient {
  const c = new RegistryClient({ sleep: async () => {}, ...opts });
  track(c);
  return c;
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, includes?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isBerthError(e, code), `expected ${code}, got ${String((e as { code?: string }).code)}: ${String(e)}`);
    if (includes) assert.ok(e.message.includes(includes), e.message);
    return true;
  });
}

/** A token server; `check` decides whether a token request is granted. */
async function tokenServer(check: (req: SeenRequest) => boolean, field: 'token' | 'access_token' = 'token'): Promise<FakeServer> {
  return server((req, res) => {
    if (!check(req)) return sendJSON(res, 401, { details: 'incorrect username or password' });
    const url = new URL(req.url, 'http://x');
    const scope = url.searchParams.get('scope') ?? new URLSearchParams(req.body).get('scope') ?? '';
    sendJSON(res, 200, { [field]: `tok:${scope}`, expires_in: 300 });
  });
}

/** A registry demanding `Bearer tok:repository:<repo>:pull`, with tokens from realm. */
async function bearerRegistry(realm: () => string, extra?: (req: SeenRequest, res: import('node:http').ServerResponse) => boolean): Promise<FakeServer> {
  return server((req, res) => {
    const repo = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(req.url)?.[1];
    const want = repo ? `Bearer tok:repository:${repo}:pull` : undefined;
    const ok = req.url === '/v2/' ? String(req.headers.authorization ?? '').startsWith('Bearer tok:') : req.headers.authorization === want;
    if (!ok) {
      const scope = repo ? `,scope="repository:${repo}:pull"` : '';
      return sendJSON(res, 401, registryError('UNAUTHORIZED', 'authentication required'), {
        'www-authenticate': `Bearer realm="${realm()}",service="fake-registry"${scope}`,
      });
    }
    if (extra?.(req, res)) return;
    if (req.url === '/v2/') return sendJSON(res, 200, {});
    res.writeHead(200, { 'content-type': MT.ociManifest });
    res.end(MANIFEST);
  });
}

test('Bearer: 401 challenge -> anonymous token (service+scope) -> retry; token cached per scope', async () => {
  const tokens = await tokenServer((req) => req.headers.authorization === undefined);
  const reg = await bearerRegistry(() => `${tokens.origin}/token`);
  const c = client();
  const loc = { registry: reg.host, repository: 'library/busybox' };
  const m = await c.getManifest(loc, 'latest');
  assert.equal(m.digest, sha256(MANIFEST));
  const t = new URL(tokens.requests[0]!.url, 'http://x');
  assert.equal(t.pathname, '/token');
  assert.equal(t.searchParams.get('service'), 'fake-registry');
  assert.equal(t.searchParams.get('scope'), 'repository:library/busybox:pull');
  await c.getManifest(loc, 'latest');
  await c.getManifest(loc, 'other');
  assert.equal(tokens.requests.length, 1, 'token reused');
  assert.equal(reg.requests.length, 4, 'one 401, then three authenticated requests');
  // another repository needs another scope, fetched up front (no second 401)
  await c.getManifest({ registry: reg.host, repository: 'other/repo' }, 'x');
  assert.equal(tokens.requests.length, 2);
  assert.equal(reg.requests.length, 5);
});

test('Bearer with username/password: Basic auth at the realm, access_token accepted', async () => {
  const tokens = await tokenServer((req) => req.headers.authorization === basic('alice', 's3cret'), 'access_token');
  const reg = await bearerRegistry(() => `${tokens.origin}/token`);
  const seen: Array<[string, string | undefined]> = [];
  const c = client({ credentials: (host, repo) => { seen.push([host, repo]); return { username: 'alice', password: 's3cret' }; } });
  await c.getManifest({ registry: reg.host, repository: 'private/app' }, 'v1');
  assert.deepEqual(seen[0], [reg.host, 'private/app']);
});

test('Bearer with identitytoken: POST refresh_token grant', async () => {
  const tokens = await tokenServer((req) => {
    const f = new URLSearchParams(req.body);
    return req.method === 'POST' && f.get('grant_type') === 'refresh_token' && f.get('refresh_token') === 'rt-1' && f.get('service') === 'fake-registry';
  });
  const reg = await bearerRegistry(() => `${tokens.origin}/token`);
  const c = client({ credentials: () => ({ identitytoken: 'rt-1' }) });
  await c.getManifest({ registry: reg.host, repository: 'app' }, 'v1');
  assert.equal(tokens.requests[0]!.headers['content-type'], 'application/x-www-form-urlencoded');
});

test('wrong credentials at the realm -> UNAUTHORIZED naming the registry', async () => {
  const tokens = await tokenServer(() => false);
  const reg = await bearerRegistry(() => `${tokens.origin}/token`);
  const c = client({ credentials: () => ({ username: 'alice', password: 'wrong' }) });
  await rejectsWith(c.getManifest({ registry: reg.host, repository: 'app' }, 'v1'), 'UNAUTHORIZED', reg.host);
});

test('401 again after a token -> UNAUTHORIZED; 403 -> UNAUTHORIZED access denied', async () => {
  const tokens = await tokenServer(() => true);
  const reg = await server((req, res) => {
    if (req.url.includes('/denied/')) return sendJSON(res, 403, registryError('DENIED', 'requested access to the resource is denied'));
    sendJSON(res, 401, registryError('UNAUTHORIZED'), { 'www-authenticate': `Bearer realm="${tokens.origin}/token",service="s"` });
  });
  const c = client();
  await rejectsWith(c.getManifest({ registry: reg.host, repository: 'app' }, 'v1'), 'UNAUTHORIZED', `pull access denied for ${reg.host}/app`);
  await rejectsWith(c.getManifest({ registry: reg.host, repository: 'denied/app' }, 'v1'), 'UNAUTHORIZED', 'access denied');
});

test('Basic challenge: credentials sent, and up front afterwards; none -> UNAUTHORIZED', async () => {
  const reg = await server((req, res) => {
    if (req.headers.authorization !== basic('bob', 'pw')) {
      return sendJSON(res, 401, registryError('UNAUTHORIZED'), { 'www-authenticate': 'Basic realm="Registry Realm"' });
    }
    res.writeHead(200, { 'content-type': MT.ociManifest });
    res.end(MANIFEST);
  });
  const c = client({ credentials: () => ({ username: 'bob', password: 'pw' }) });
  await c.getManifest({ registry: reg.host, repository: 'app' }, 'v1');
  await c.getManifest({ registry: reg.host, repository: 'app' }, 'v2');
  assert.equal(reg.requests.length, 3);
  await rejectsWith(client().getManifest({ registry: reg.host, repository: 'app' }, 'v1'), 'UNAUTHORIZED', reg.host);
});

test('cross-origin blob redirect never carries Authorization; same-origin keeps it', async () => {
  const cdn = await server((req, res) => {
    assert.equal(req.headers.authorization, undefined, 'CDN must not see the registry token');
    assert.equal(req.headers.range, 'bytes=3-');
    res.writeHead(206, { 'content-range': `bytes 3-${BLOB.length - 1}/${BLOB.length}` });
    res.end(BLOB.subarray(3));
  });
  const tokens = await tokenServer(() => true);
  const reg = await bearerRegistry(() => `${tokens.origin}/token`, (req, res) => {
    if (req.url.includes('/blobs/') && !req.url.includes('?hop')) {
      res.writeHead(307, { location: `${req.url}?hop` });
      res.end();
      return true;
    }
    if (req.url.includes('?hop')) {
      res.writeHead(302, { location: `${cdn.origin}/storage/blob?sig=1` });
      res.end();
      return true;
    }
    return false;
  });
  const c = client();
  const r = await c.fetchBlob({ registry: reg.host, repository: 'app' }, { digest: BLOB_DIGEST, size: BLOB.length }, { offset: 3 });
  assert.equal(r.start, 3);
  assert.deepEqual(Buffer.concat(await r.body.toArray()), BLOB.subarray(3));
  assert.equal(cdn.requests.length, 1);
  const hop = reg.requests.find((q) => q.url.includes('?hop'));
  assert.equal(hop?.headers.authorization, 'Bearer tok:repository:app:pull', 'same-origin redirect keeps auth');
});

test('ping and checkLogin', async () => {
  const tokens = await tokenServer((req) => req.headers.authorization === basic('u', 'good'));
  const reg = await bearerRegistry(() => `${tokens.origin}/token`);
  const c = client();
  await c.checkLogin(reg.host, { username: 'u', password: 'good' });
  assert.equal(new URL(tokens.requests[0]!.url, 'http://x').searchParams.get('scope'), null, 'login asks for no scope');
  await rejectsWith(c.checkLogin(reg.host, { username: 'u', password: 'bad' }), 'UNAUTHORIZED', reg.host);
  const creds: Credentials = { username: 'u', password: 'good' };
  await client({ credentials: () => creds }).ping(reg.host);
  const open = await server((req, res) => sendJSON(res, 200, {}));
  await c.ping(open.host);
  const basicOnly = await server((req, res) => sendJSON(res, 401, {}, { 'www-authenticate': 'Basic realm="x"' }));
  await rejectsWith(c.ping(basicOnly.host), 'UNAUTHORIZED', basicOnly.host);
});

test('plain-HTTP token realm on a non-loopback host -> INSECURE_BLOCKED', async () => {
  const reg = await server((req, res) => sendJSON(res, 401, {}, { 'www-authenticate': 'Bearer realm="http://auth.example.invalid/token",service="s"' }));
  await rejectsWith(client().getManifest({ registry: reg.host, repository: 'app' }, 'v1'), 'INSECURE_BLOCKED', 'auth.example.invalid');
});
