import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../base/errors.ts';
import { parseReference, registryApiHost, withTarget, fetchTarget } from './reference.ts';
import type { Digest } from '../base/digest.ts';

const D = `sha256:${'a'.repeat(64)}`;
const D512 = `sha512:${'b'.repeat(128)}`;

// input, registry, repository, tag, digest, toString, familiar
const OK: Array<[string, string, string, string | undefined, string | undefined, string, string]> = [
  ['busybox', 'docker.io', 'library/busybox', 'latest', undefined, 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['busybox:1.36', 'docker.io', 'library/busybox', '1.36', undefined, 'docker.io/library/busybox:1.36', 'busybox:1.36'],
  ['library/busybox', 'docker.io', 'library/busybox', 'latest', undefined, 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['docker.io/busybox', 'docker.io', 'library/busybox', 'latest', undefined, 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['docker.io/library/busybox', 'docker.io', 'library/busybox', 'latest', undefined, 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['index.docker.io/busybox', 'docker.io', 'library/busybox', 'latest', undefined, 'docker.io/library/busybox:latest', 'busybox:latest'],
  ['index.docker.io/foo/bar:x', 'docker.io', 'foo/bar', 'x', undefined, 'docker.io/foo/bar:x', 'foo/bar:x'],
  ['foo/bar', 'docker.io', 'foo/bar', 'latest', undefined, 'docker.io/foo/bar:latest', 'foo/bar:latest'],
  ['foo/bar/baz', 'docker.io', 'foo/bar/baz', 'latest', undefined, 'docker.io/foo/bar/baz:latest', 'foo/bar/baz:latest'],
  ['docker.io/library/a/b', 'docker.io', 'library/a/b', 'latest', undefined, 'docker.io/library/a/b:latest', 'library/a/b:latest'],
  ['quay.io/podman/hello', 'quay.io', 'podman/hello', 'latest', undefined, 'quay.io/podman/hello:latest', 'quay.io/podman/hello:latest'],
  ['localhost/x', 'localhost', 'x', 'latest', undefined, 'localhost/x:latest', 'localhost/x:latest'],
  ['localhost:5000/x/y:t', 'localhost:5000', 'x/y', 't', undefined, 'localhost:5000/x/y:t', 'localhost:5000/x/y:t'],
  ['127.0.0.1:5000/app', '127.0.0.1:5000', 'app', 'latest', undefined, '127.0.0.1:5000/app:latest', '127.0.0.1:5000/app:latest'],
  ['[::1]:5000/app:v1', '[::1]:5000', 'app', 'v1', undefined, '[::1]:5000/app:v1', '[::1]:5000/app:v1'],
  ['[fe80::1]/app', '[fe80::1]', 'app', 'latest', undefined, '[fe80::1]/app:latest', '[fe80::1]/app:latest'],
  ['myhost:443/a', 'myhost:443', 'a', 'latest', undefined, 'myhost:443/a:latest', 'myhost:443/a:latest'],
  ['Foo/bar', 'Foo', 'bar', 'latest', undefined, 'Foo/bar:latest', 'Foo/bar:latest'],
  ['localhost:5000', 'docker.io', 'library/localhost', '5000', undefined, 'docker.io/library/localhost:5000', 'localhost:5000'],
  [`busybox@${D}`, 'docker.io', 'library/busybox', undefined, D, `docker.io/library/busybox@${D}`, `busybox@${D}`],
  [`busybox:1@${D}`, 'docker.io', 'library/busybox', '1', D, `docker.io/library/busybox:1@${D}`, `busybox:1@${D}`],
  [`r.example.com:5000/a/b:t@${D512}`, 'r.example.com:5000', 'a/b', 't', D512, `r.example.com:5000/a/b:t@${D512}`, `r.example.com:5000/a/b:t@${D512}`],
  ['a_b/c__d/e-f/g.h/i---j:T_a.g-1', 'docker.io', 'a_b/c__d/e-f/g.h/i---j', 'T_a.g-1', undefined, 'docker.io/a_b/c__d/e-f/g.h/i---j:T_a.g-1', 'a_b/c__d/e-f/g.h/i---j:T_a.g-1'],
  [`x:${'t'.repeat(128)}`, 'docker.io', 'library/x', 't'.repeat(128), undefined, `docker.io/library/x:${'t'.repeat(128)}`, `x:${'t'.repeat(128)}`],
  ['a.b-c.d/x', 'a.b-c.d', 'x', 'latest', undefined, 'a.b-c.d/x:latest', 'a.b-c.d/x:latest'],
];

for (const [input, registry, repository, tag, digest, full, familiar] of OK) {
  test(`parses ${input}`, () => {
    const r = parseReference(input);
    assert.equal(r.registry, registry);
    assert.equal(r.repository, repository);
    assert.equal(r.tag, tag);
    assert.equal(r.digest, digest);
    assert.equal(r.name, `${registry}/${repository}`);
    assert.equal(r.toString(), full);
    assert.equal(`${r}`, full);
    assert.equal(r.familiar, familiar);
    // normalization is idempotent
    assert.equal(parseReference(full).toString(), full);
    assert.equal(parseReference(familiar).toString(), full);
  });
}

// input, substring of the reason
const BAD: Array<[string, string]> = [
  ['', 'empty'],
  ['Busybox', 'lowercase'],
  ['docker.io/Library/busybox', 'lowercase'],
  ['quay.io/Foo/bar', 'lowercase'],
  ['foo/Bar', 'lowercase'],
  ['a b', 'whitespace'],
  ['busybox:', 'bad tag'],
  ['busybox:-x', 'bad tag'],
  ['busybox:a/b', 'bad registry host'],
  [`busybox:${'t'.repeat(129)}`, 'bad tag'],
  ['busybox@sha256:abc', 'bad digest'],
  [`busybox@sha256:${'A'.repeat(64)}`, 'bad digest'],
  [`busybox@md5:${'a'.repeat(32)}`, 'bad digest'],
  ['busybox@', 'bad digest'],
  [`a@${D}@${D}`, 'more than one'],
  ['a' + '/b'.repeat(200), 'longer than 255'],
  ['foo//bar', 'empty path component'],
  ['foo/', 'empty path component'],
  ['/foo', 'empty path component'],
  [':tag', 'missing repository'],
  ['-foo', 'bad path component'],
  ['foo-', 'bad path component'],
  ['foo..bar', 'bad path component'],
  ['foo___bar', 'bad path component'],
  ['foo.-bar', 'bad path component'],
  ['-host.com/foo', 'bad registry host'],
  ['host.com:port/foo', 'bad registry host'],
  ['host_name.com/foo', 'bad registry host'],
  ['localhost:5000/', 'empty path component'],
  ['a'.repeat(64).replace(/a/g, 'f'), 'image ID'],
  ['[::1/app', 'bad registry host'],
];

for (const [input, why] of BAD) {
  test(`rejects ${JSON.stringify(input.length > 60 ? input.slice(0, 60) + '…' : input)}`, () => {
    assert.throws(() => parseReference(input), (e: unknown) => {
      assert.ok(isBerthError(e, 'INVALID_REFERENCE'), String(e));
      assert.ok(e.message.startsWith(`invalid reference "${input}": `), e.message);
      assert.ok(e.message.includes(why), `${e.message} should mention ${why}`);
      return true;
    });
  });
}

test('registryApiHost maps Docker Hub and leaves others alone', () => {
  assert.equal(registryApiHost('docker.io'), 'registry-1.docker.io');
  assert.equal(registryApiHost('index.docker.io'), 'registry-1.docker.io');
  assert.equal(registryApiHost('quay.io'), 'quay.io');
  assert.equal(registryApiHost('localhost:5000'), 'localhost:5000');
});

test('withTarget and fetchTarget: digest wins for fetching, tag kept for naming', () => {
  const r = parseReference('busybox:1.36');
  assert.equal(fetchTarget(r), '1.36');
  const pinned = withTarget(r, { tag: r.tag, digest: D as Digest });
  assert.equal(pinned.toString(), `docker.io/library/busybox:1.36@${D}`);
  assert.equal(fetchTarget(pinned), D);
  assert.equal(fetchTarget(withTarget(r, {})), 'latest');
});

test('references are immutable and JSON-serialize to their string form', () => {
  const r = parseReference('busybox');
  assert.throws(() => { (r as { tag?: string }).tag = 'x'; });
  assert.equal(JSON.stringify({ r }), '{"r":"docker.io/library/busybox:latest"}');
});
