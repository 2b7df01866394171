import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkDigest, parseConfig, parseIndex, parseJSONDocument, parseManifest, validateConfig, validateIndex, validateManifest } from './validate.ts';

const D = `sha256:${'a'.repeat(64)}`;
const desc = (over: Record<string, unknown> = {}) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D, size: 1, ...over });
const manifest = (over: Record<string, unknown> = {}) => ({ schemaVersion: 2, config: desc({ mediaType: 'application/vnd.oci.image.config.v1+json' }), layers: [desc()], ...over });
const config = (over: Record<string, unknown> = {}, c: Record<string, unknown> = {}) =>
  ({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'], ...c }, rootfs: { type: 'layers', diff_ids: [D] }, ...over });
const corrupt = (field: string) => ({ code: 'CORRUPT', message: new RegExp(`field "${field.replace(/[[\].]/g, '\\$&')}"`) });

test('digests: only sha256/sha512 of the right length, lowercase hex; never a path', () => {
  checkDigest(D, 'x', 'f');
  checkDigest(`sha512:${'0'.repeat(128)}`, 'x', 'f');
  for (const bad of ['sha256:../../x', `sha256:${'A'.repeat(64)}`, `sha256:${'a'.repeat(63)}`, `md5:${'a'.repeat(32)}`,
    `sha256:${'a'.repeat(64)}/`, `sha256:${'a'.repeat(64)}\n`, `sha384:${'a'.repeat(96)}`, '', `sha512:${'a'.repeat(64)}`]) {
    assert.throws(() => checkDigest(bad, 'x', 'f'), corrupt('f'), bad);
  }
  assert.throws(() => checkDigest(5, 'x', 'f'), corrupt('f'));
});

test('every digest in a manifest, an index and a config is checked before use', () => {
  assert.throws(() => validateManifest(manifest({ layers: [desc(), desc({ digest: 'sha256:../../x' })] }), 'm'), corrupt('layers[1].digest'));
  assert.throws(() => validateManifest(manifest({ config: desc({ digest: '/etc/passwd' }) }), 'm'), corrupt('config.digest'));
  assert.throws(() => validateIndex({ schemaVersion: 2, manifests: [desc({ digest: 'sha256:..%2f' })] }, 'i'), corrupt('manifests[0].digest'));
  assert.throws(() => validateConfig(config({ rootfs: { type: 'layers', diff_ids: [D, 'sha256:../../x'] } }), 'c'), corrupt('rootfs.diff_ids[1]'));
});

test('descriptor and manifest shapes', () => {
  validateManifest(manifest(), 'm');
  assert.throws(() => validateManifest(manifest({ layers: {} }), 'm'), corrupt('layers'));
  assert.throws(() => validateManifest(manifest({ layers: [desc({ size: -1 })] }), 'm'), corrupt('layers[0].size'));
  assert.throws(() => validateManifest(manifest({ layers: [desc({ size: '12' })] }), 'm'), corrupt('layers[0].size'));
  assert.throws(() => validateManifest(manifest({ layers: [desc({ size: 2 ** 60 })] }), 'm'), corrupt('layers[0].size'));
  assert.throws(() => validateManifest(manifest({ layers: [desc({ mediaType: 7 })] }), 'm'), corrupt('layers[0].mediaType'));
  assert.throws(() => validateManifest(manifest({ schemaVersion: 1 }), 'm'), corrupt('schemaVersion'));
  assert.throws(() => validateManifest(manifest({ layers: Array(1001).fill(desc()) }), 'm'), corrupt('layers'));
  assert.throws(() => validateManifest([], 'm'), { code: 'CORRUPT' });
  assert.throws(() => validateIndex({ schemaVersion: 2, manifests: [desc({ platform: 'linux/amd64' })] }, 'i'), corrupt('manifests[0].platform'));
  assert.throws(() => validateIndex({ schemaVersion: 2, manifests: [desc({ platform: { os: 'linux', architecture: 1 } })] }, 'i'), corrupt('manifests[0].platform.architecture'));
  assert.throws(() => validateIndex({ schemaVersion: 2, manifests: [desc({ annotations: { a: 1 } })] }, 'i'), corrupt('manifests[0].annotations.a'));
});

test('config field types are the spec types; the error names the field', () => {
  validateConfig(config(), 'c');
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ Entrypoint: '/bin/sh' }, 'config.Entrypoint'],
    [{ Cmd: 'sh' }, 'config.Cmd'],
    [{ Cmd: ['sh', 1] }, 'config.Cmd[1]'],
    [{ User: 0 }, 'config.User'],
    [{ Env: { PATH: '/bin' } }, 'config.Env'],
    [{ Env: ['A=1', { B: 2 }] }, 'config.Env[1]'],
    [{ ExposedPorts: ['80/tcp'] }, 'config.ExposedPorts'],
    [{ ExposedPorts: { '80/tcp': 'yes' } }, 'config.ExposedPorts.80/tcp'],
    [{ Volumes: ['/data'] }, 'config.Volumes'],
    [{ WorkingDir: ['/'] }, 'config.WorkingDir'],
    [{ Labels: { a: 1 } }, 'config.Labels.a'],
    [{ StopSignal: 15 }, 'config.StopSignal'],
    [{ ArgsEscaped: 'yes' }, 'config.ArgsEscaped'],
  ];
  for (const [c, field] of cases) assert.throws(() => validateConfig(config({}, c), 'c'), corrupt(field), field);
  assert.throws(() => validateConfig(config({ config: [] }), 'c'), corrupt('config'));
  assert.throws(() => validateConfig(config({ rootfs: undefined }), 'c'), corrupt('rootfs'));
  assert.throws(() => validateConfig(config({ rootfs: { type: 'layers', diff_ids: D } }), 'c'), corrupt('rootfs.diff_ids'));
  assert.throws(() => validateConfig(config({ rootfs: { type: 'tarballs', diff_ids: [] } }), 'c'), corrupt('rootfs.type'));
  assert.throws(() => validateConfig(config({ os: ['linux'] }), 'c'), corrupt('os'));
  assert.throws(() => validateConfig(config({ history: [{ created_by: 5 }] }), 'c'), corrupt('history[0].created_by'));
});

test('null means absent (Docker writes "Cmd": null) and is dropped from the result', () => {
  const c = validateConfig(config({ history: null }, { Cmd: null, Entrypoint: null, Labels: null, Env: null, Volumes: null, User: null }), 'c');
  assert.deepEqual(c.config, {});
  assert.equal('history' in c, false);
});

test('documents are size-capped before parsing', () => {
  const big = Buffer.alloc((4 << 20) + 1, 0x20);
  assert.throws(() => parseManifest(big, 'm'), { code: 'CORRUPT', message: /too large/ });
  assert.throws(() => parseIndex(big, 'i'), { code: 'CORRUPT', message: /too large/ });
  assert.throws(() => parseJSONDocument(Buffer.from('{"a":'), 'j', 100), { code: 'CORRUPT', message: /not valid JSON/ });
  parseConfig(Buffer.from(JSON.stringify(config())), 'c');
});
