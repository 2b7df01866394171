import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError } from '../base/errors.ts';
import { parseReference } from '../reference/index.ts';
import { loadRegistriesConfig, parseRegistriesConf, prefixMatches } from './registries-conf.ts';
import { parseToml } from './toml.ts';

const MAIN = `
# system config
unqualified-search-registries = ["registry.fedoraproject.org", "docker.io"]
short-name-mode = "enforcing"

[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "mirror.gcr.io"
[[registry.mirror]]
location = "10.0.0.5:5000/hub"   # local cache
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
prefix = "example.com/foo"
location = "internal.example.com/bar"
insecure = true

[[registry]]
location = "evil.example"
blocked = true

[[registry]]
prefix = "*.corp.example"
insecure = true

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
`;

test('toml subset: values, tables, arrays of tables, errors with file:line', () => {
  const t = parseToml(`a = "x\\ty" # c\nb = 'lit\\n'\nc = [ "1",\n  "2", ]\nd = false\n[[t]]\nk = 1\n[[t.sub]]\nk = 2\n[[t]]\n[s]\n"q k" = true\n`, 'x.conf');
  assert.deepEqual(t, { a: 'x\ty', b: 'lit\\n', c: ['1', '2'], d: false, t: [{ k: 1, sub: [{ k: 2 }] }, {}], s: { 'q k': true } });
  for (const [src, line, why] of [['a = 1\nb = {x = 1}', 2, 'unsupported value'], ['\n\nx.y = 1', 3, 'dotted'], ['a = """x"""', 1, 'multi-line'], ['a = [1 2]', 1, 'expected ","'], ['[a\n', 1, 'malformed']] as const) {
    assert.throws(() => parseToml(src, 'f.conf'), (e: unknown) => isBerthError(e) && e.message.startsWith(`f.conf:${line}: `) && e.message.includes(why), src);
  }
});

test('prefix matching is by path component and supports *.domain', () => {
  assert.ok(prefixMatches('example.com/foo', 'example.com/foo'));
  assert.ok(prefixMatches('example.com/foo', 'example.com/foo/bar'));
  assert.ok(!prefixMatches('example.com/foo', 'example.com/foobar'));
  assert.ok(prefixMatches('*.corp.example', 'r.corp.example/x'));
  assert.ok(!prefixMatches('*.corp.example', 'corp.example/x'));
});

test('endpointsFor: mirrors first (respecting pull-from-mirror), then the original', () => {
  const c = parseRegistriesConf([{ path: 'main.conf', text: MAIN }]);
  assert.deepEqual(c.unqualifiedSearchRegistries, ['registry.fedoraproject.org', 'docker.io']);
  const byTag = parseReference('busybox');
  assert.deepEqual(c.endpointsFor(byTag), [
    { registry: 'mirror.gcr.io', repository: 'library/busybox', insecure: false, mirror: true },
    { registry: 'docker.io', repository: 'library/busybox', insecure: false, mirror: false },
  ]);
  const byDigest = parseReference(`busybox@sha256:${'a'.repeat(64)}`);
  assert.deepEqual(c.endpointsFor(byDigest).map((e) => `${e.registry}/${e.repository}${e.insecure ? ' insecure' : ''}`), [
    'mirror.gcr.io/library/busybox', '10.0.0.5:5000/hub/library/busybox insecure', 'docker.io/library/busybox',
  ]);
  assert.deepEqual(c.mirrorsFor(byDigest), [{ host: 'mirror.gcr.io', insecure: false }, { host: '10.0.0.5:5000', insecure: true }]);
  assert.deepEqual(c.endpointsFor(parseReference('example.com/foo/app:1')), [
    { registry: 'internal.example.com', repository: 'bar/app', insecure: true, mirror: false },
  ]);
  assert.deepEqual(c.endpointsFor(parseReference('quay.io/a/b')), [{ registry: 'quay.io', repository: 'a/b', insecure: false, mirror: false }]);
  assert.throws(() => c.endpointsFor(parseReference('evil.example/x')), (e: unknown) => isBerthError(e, 'PERMISSION_DENIED') && e.message.includes('evil.example'));
});

test('isInsecure / isBlocked', () => {
  const c = parseRegistriesConf([{ path: 'main.conf', text: MAIN }]);
  assert.equal(c.isInsecure('internal.example.com'), true);
  assert.equal(c.isInsecure('10.0.0.5:5000'), true);
  assert.equal(c.isInsecure('r.corp.example'), true);
  assert.equal(c.isInsecure('docker.io'), false);
  assert.equal(c.isInsecure('mirror.gcr.io'), false);
  assert.equal(c.isBlocked('evil.example'), true);
  assert.equal(c.isBlocked('docker.io'), false);
});

test('v1 format lists', () => {
  const c = parseRegistriesConf([{ path: 'v1.conf', text: '[registries.search]\nregistries = ["docker.io"]\n[registries.insecure]\nregistries = ["old:5000"]\n[registries.block]\nregistries = ["bad.io"]\n' }]);
  assert.equal(c.isInsecure('old:5000'), true);
  assert.equal(c.isBlocked('bad.io'), true);
  assert.deepEqual(c.unqualifiedSearchRegistries, ['docker.io']);
});

test('loadRegistriesConfig: main file then conf.d in order; later same prefix replaces; errors name the file', async () => {
  const d = await mkdtemp(join(tmpdir(), 'berth-regconf-'));
  await mkdir(join(d, 'conf.d'));
  await writeFile(join(d, 'registries.conf'), MAIN);
  await writeFile(join(d, 'conf.d', '50-a.conf'), '[[registry]]\nlocation = "docker.io"\ninsecure = true\n');
  await writeFile(join(d, 'conf.d', '10-b.conf'), 'unqualified-search-registries = ["quay.io"]\n');
  await writeFile(join(d, 'conf.d', 'ignored.txt'), 'garbage = = =');
  const c = await loadRegistriesConfig({ file: join(d, 'registries.conf'), dir: join(d, 'conf.d') });
  assert.equal(c.isInsecure('docker.io'), true);
  assert.deepEqual(c.mirrorsFor(parseReference('busybox')), [], 'replaced entry has no mirrors');
  assert.deepEqual(c.unqualifiedSearchRegistries, ['quay.io']);
  const none = await loadRegistriesConfig({ file: join(d, 'nope.conf'), dir: join(d, 'nope.d') });
  assert.deepEqual(none.endpointsFor(parseReference('x')), [{ registry: 'docker.io', repository: 'library/x', insecure: false, mirror: false }]);
  await writeFile(join(d, 'conf.d', '60-bad.conf'), '[[registry]]\nlocation = "x"\ninsecure = "yes"\n');
  await assert.rejects(loadRegistriesConfig({ file: join(d, 'registries.conf'), dir: join(d, 'conf.d') }),
    (e: unknown) => isBerthError(e, 'INVALID_ARGUMENT') && e.message.includes('60-bad.conf'));
});
