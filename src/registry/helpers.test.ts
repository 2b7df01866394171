import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWwwAuthenticate } from './www-authenticate.ts';
import { parseRetryAfter, retryDelay, isRetryableStatus } from './retry.ts';
import { isLoopbackHost } from './transport.ts';
import { httpError } from './http-errors.ts';

test('WWW-Authenticate: Bearer with quoted params, Basic, several challenges, escapes', () => {
  assert.deepEqual(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  assert.deepEqual(parseWwwAuthenticate('Basic realm="a\\"b", Bearer realm=https://x/t, error=invalid_token'), [
    { scheme: 'basic', params: { realm: 'a"b' } },
    { scheme: 'bearer', params: { realm: 'https://x/t', error: 'invalid_token' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate(['Basic realm=x', 'Bearer realm=y']).map((c) => c.scheme), ['basic', 'bearer']);
  assert.deepEqual(parseWwwAuthenticate(undefined), []);
});

test('Retry-After: seconds, HTTP-date, garbage; backoff grows and is capped', () => {
  const now = Date.parse('2024-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('3', now), 3000);
  assert.equal(parseRetryAfter('Mon, 01 Jan 2024 00:00:10 GMT', now), 10_000);
  assert.equal(parseRetryAfter('Sun, 31 Dec 2023 00:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(undefined, now), undefined);
  const p = { retries: 4, baseDelayMs: 200, maxDelayMs: 1000, sleep: async () => {} };
  assert.ok(retryDelay(p, 0) >= 200 && retryDelay(p, 0) < 400);
  assert.ok(retryDelay(p, 2) >= 800);
  assert.equal(retryDelay(p, 10), 1000);
  assert.equal(retryDelay(p, 0, 60_000), 1000);
  assert.ok(isRetryableStatus(429) && isRetryableStatus(502) && !isRetryableStatus(404) && !isRetryableStatus(501));
});

test('loopback hosts', () => {
  for (const h of ['localhost', 'localhost:5000', '127.0.0.1', '127.1.2.3:80', '[::1]', '[::1]:5000']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['localhost.example.com', '128.0.0.1', '[::2]', 'docker.io']) assert.ok(!isLoopbackHost(h), h);
});

test('httpError maps registry error codes', () => {
  const s = { registry: 'r.io', repository: 'a/b', kind: 'manifest' as const, target: 'v1' };
  assert.equal(httpError(404, '', s).message, 'repository or tag not found: r.io/a/b:v1');
  assert.equal(httpError(400, JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN' }] }), s).code, 'MANIFEST_UNKNOWN');
  assert.equal(httpError(401, JSON.stringify({ errors: [{ code: 'DENIED' }] }), s).code, 'UNAUTHORIZED');
  const e = httpError(418, 'teapot', s);
  assert.equal(e.code, 'REGISTRY_ERROR');
  assert.equal(e.details.status, 418);
});
