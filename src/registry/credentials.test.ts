/**
 * Credentials and secrets on the wire and in errors: a token POST is never re-sent to
 * another origin, --creds go only to the named registry, and signed redirect URLs and
 * tokens never appear in error messages or details.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { isBerthError } from '../base/errors.ts';
import { sha256 } from '../base/digest.ts';
import { redactText, redactUrl } from '../base/redact.ts';
import { MT } from '../oci/media-types.ts';
import { credentialsFor } from './creds-scope.ts';
import { RegistryClient } from './client.ts';
import { useFakeServers, sendJSON, registryError } from './fake-server.ts';

const { server, track } = useFakeServers();
const BLOB = Buffer.from('layer bytes');
const SECRET = 'X-Amz-Signature=deadbeefcafe&X-Amz-Credential=AKIAEXAMPLE';

function client(opts: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient {
  const c = new RegistryClient({ sleep: async () => {}, retries: 0, ...opts });
  track(c);
  return c;
}

function noSecrets(e: unknown): void {
  const all = `${(e as Error).message} ${JSON.stringify((e as { details?: unknown }).details ?? {})}`;
  for (const s of ['deadbeef', 'AKIAEXAMPLE', 'rt-secret', 'sekrit']) assert.ok(!all.includes(s), `secret "${s}" leaked: ${all}`);
}

async function registryWithTokenRealm(realm: string) {
  return server((req, res) => {
    if (req.headers.authorization?.startsWith('Bearer ')) {
      res.writeHead(200, { 'content-type': MT.ociManifest });
      res.end(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, config: {}, layers: [] }));
      return;
    }
    sendJSON(res, 401, registryError('UNAUTHORIZED', 'auth'), { 'www-authenticate': `Bearer realm="${realm}",service="svc"` });
  });
}

test('a token POST (refresh token in the body) redirected to another origin is refused, never re-sent', async () => {
  const other = await server((_req, res) => sendJSON(res, 200, { token: 'stolen' }));
  const tokens = await server((req, res) => {
    res.writeHead(307, { location: `${other.origin}/token` });
    res.end();
  });
  const reg = await registryWithTokenRealm(`${tokens.origin}/token`);
  const c = client({ credentials: () => ({ identitytoken: 'rt-secret' }) });
  await assert.rejects(c.getManifest({ registry: reg.host, repository: 'app' }, 'v1'), (e: unknown) => {
    assert.ok(isBerthError(e, 'REGISTRY_ERROR'), String(e));
    assert.match(e.message, /redirected a POST with a request body to another origin/);
    noSecrets(e);
    return true;
  });
  assert.equal(other.requests.length, 0, 'the other origin never saw the refresh token');
});

test('a token POST redirected within its own origin is followed (307 keeps the body)', async () => {
  const tokens = await server((req, res) => {
    if (req.url === '/token') {
      res.writeHead(307, { location: '/token2' });
      res.end();
      return;
    }
    assert.equal(new URLSearchParams(req.body).get('refresh_token'), 'rt-secret');
    sendJSON(res, 200, { token: 'ok' });
  });
  const reg = await registryWithTokenRealm(`${tokens.origin}/token`);
  await client({ credentials: () => ({ identitytoken: 'rt-secret' }) }).getManifest({ registry: reg.host, repository: 'app' }, 'v1');
});

test('a token answer larger than 1 MiB is refused', async () => {
  const tokens = await server((_req, res) => sendJSON(res, 200, { token: 'x'.repeat(2 << 20) }));
  const reg = await registryWithTokenRealm(`${tokens.origin}/token`);
  await assert.rejects(client().getManifest({ registry: reg.host, repository: 'app' }, 'v1'), (e: unknown) => {
    assert.ok(isBerthError(e, 'REGISTRY_ERROR') && /larger than/.test(e.message), String(e));
    return true;
  });
});

test('signed blob redirect URLs never appear in errors: storage error, refused connection, redirect loop', async () => {
  const storage = await server((_req, res) => sendJSON(res, 403, registryError('DENIED', `signature expired for /blob?${SECRET}`)));
  const closed = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
  const targets = [`${storage.origin}/blob?${SECRET}`, `http://127.0.0.1:${closed}/blob?${SECRET}`, 'loop'];
  for (const target of targets) {
    const reg = await server((req, res) => {
      const loc = target === 'loop' ? `${req.url.split('?')[0]}?${SECRET}` : target;
      res.writeHead(307, { location: loc });
      res.end();
    });
    const digest = sha256(BLOB);
    await assert.rejects(client().fetchBlob({ registry: reg.host, repository: 'app' }, { digest, size: BLOB.length }), (e: unknown) => {
      assert.ok(isBerthError(e), String(e));
      noSecrets(e);
      return true;
    }, target);
  }
});

test('--creds go only to the registry named in the reference; mirrors get their own auth-file entries', async () => {
  const files = (host: string) => (host === 'mirror.example:5000' ? { username: 'm', password: 'mirror-pw' } : undefined);
  const lookup = credentialsFor('registry.example', { username: 'u', password: 'sekrit' }, files);
  assert.deepEqual(await lookup('registry.example', 'app'), { username: 'u', password: 'sekrit' });
  assert.deepEqual(await lookup('mirror.example:5000', 'app'), { username: 'm', password: 'mirror-pw' });
  assert.equal(await lookup('plain-http-mirror.example', 'app'), undefined);
  // without --creds everything comes from the auth files
  assert.equal(await credentialsFor('registry.example', undefined, files)('registry.example'), undefined);
});

test('a mirror serving the pull never receives --creds (real requests)', async () => {
  const mirror = await server((req, res) => {
    if (!req.headers.authorization) {
      return sendJSON(res, 401, registryError('UNAUTHORIZED', 'auth'), { 'www-authenticate': 'Basic realm="m"' });
    }
    sendJSON(res, 401, registryError('UNAUTHORIZED', 'wrong'));
  });
  const lookup = credentialsFor('registry.example', { username: 'u', password: 'sekrit' }, () => undefined);
  await assert.rejects(client({ credentials: lookup }).getManifest({ registry: mirror.host, repository: 'app' }, 'v1'), { code: 'UNAUTHORIZED' });
  assert.ok(mirror.requests.every((r) => !String(r.headers.authorization ?? '').startsWith('Basic ')), 'no Basic credentials sent to the mirror');
});

test('redaction of URLs and free text', () => {
  assert.equal(redactUrl(`https://user:pw@s3.example/b/c?${SECRET}#f`), 'https://s3.example/b/c?<redacted>');
  assert.equal(redactUrl('https://r.example/v2/'), 'https://r.example/v2/');
  const t = redactText(`GET https://u:p@cdn.example/x?sig=abc failed; Authorization: Bearer eyJhbGciOi.x.y; {"token":"abc","refresh_token":"rt-secret"} password=sekrit`);
  assert.ok(!/sig=abc|eyJhbGciOi|"abc"|rt-secret|sekrit|u:p@/.test(t), t);
  assert.equal(redactText('pull access denied for localhost:5000/app@sha256:abc'), 'pull access denied for localhost:5000/app@sha256:abc');
});
