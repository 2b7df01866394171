import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../base/errors.ts';
import type { ImageConfig } from '../oci/types.ts';
import { buildSpec, DEFAULT_PATH, type ImageForSpec } from './build-spec.ts';

const D = (c: string) => `sha256:${c.repeat(64)}` as never;
const img = (config: ImageConfig['config']): ImageForSpec => ({
  ref: 'docker.io/library/x:latest', digest: D('a'), id: D('b'), chainIds: [D('c')],
  config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config },
});
const argv = (i: ImageForSpec, f: { entrypoint?: string; args?: string[]; boot?: boolean }) =>
  buildSpec(i, { name: 'c', args: f.args ?? [], ...f }).process.args;

test('Entrypoint/Cmd resolution follows Docker', () => {
  const both = img({ Entrypoint: ['/ep'], Cmd: ['--default'] });
  assert.deepEqual(argv(both, {}), ['/ep', '--default']);
  assert.deepEqual(argv(both, { args: ['x', 'y'] }), ['/ep', 'x', 'y']);
  assert.deepEqual(argv(both, { entrypoint: '/other' }), ['/other'], '--entrypoint resets Cmd');
  assert.deepEqual(argv(both, { entrypoint: '/other', args: ['a'] }), ['/other', 'a']);
  assert.deepEqual(argv(both, { entrypoint: '', args: ['sh'] }), ['sh']);
  assert.deepEqual(argv(img({ Cmd: ['sh'] }), {}), ['sh']);
  assert.deepEqual(argv(img({ Cmd: ['sh'], Entrypoint: null }), { args: ['ls', '-l'] }), ['ls', '-l']);
});

test('no command → INVALID_ARGUMENT "image has no command", unless --boot', () => {
  const none = img({});
  assert.throws(() => argv(none, {}), (e) => isBerthError(e, 'INVALID_ARGUMENT') && /has no command/.test((e as Error).message));
  assert.throws(() => argv(img({ Entrypoint: ['/x'] }), { entrypoint: '' }), /has no command/);
  assert.deepEqual(argv(none, { boot: true }), []);
  assert.deepEqual(argv(img({ Entrypoint: ['/ep'] }), { boot: true, args: ['systemd.unit=rescue.target'] }), ['systemd.unit=rescue.target']);
});

test('env merge, workdir, user, stop signal', () => {
  const i = img({ Cmd: ['sh'], Env: ['PATH=/bin', 'A=1', 'B=2'], WorkingDir: '/app', User: 'app', StopSignal: '3', Labels: { l: '1' } });
  const s = buildSpec(i, { name: 'c', args: [], env: ['B=3', 'C=4'] });
  assert.deepEqual(s.process.env, ['PATH=/bin', 'A=1', 'B=3', 'C=4']);
  assert.equal(s.process.cwd, '/app');
  assert.equal(s.process.user, 'app');
  assert.equal(s.stopSignal, 'SIGQUIT');
  assert.deepEqual(s.labels, { l: '1' });
  const o = buildSpec(i, { name: 'c', args: [], workdir: '/w', user: '1000:1000', stopSignal: 'SIGINT' });
  assert.equal(o.process.cwd, '/w');
  assert.equal(o.process.user, '1000:1000');
  assert.equal(o.stopSignal, 'SIGINT');
  const bare = buildSpec(img({ Cmd: ['sh'] }), { name: 'c', args: [] });
  assert.deepEqual(bare.process.env, [DEFAULT_PATH]);
  assert.equal(bare.process.cwd, '/');
  assert.equal(bare.process.user, undefined);
  assert.throws(() => buildSpec(i, { name: 'c', args: [], workdir: 'rel' }), /must be absolute/);
});

test('flags land in the spec; bad names are refused', () => {
  const s = buildSpec(img({ Cmd: ['sh'] }), {
    name: 'web', args: [], memoryMax: 1024, cpuQuotaPercent: 150, tasksMax: 10, slice: 'x.slice', restart: 'on-failure',
    restartMaxRetries: 2, stopTimeoutSec: 5, readOnly: true, hostname: 'h', userns: 'host', network: { mode: 'host' },
  });
  assert.deepEqual(s.resources, { memoryMax: 1024, cpuQuotaPercent: 150, tasksMax: 10 });
  assert.equal(s.restartMaxRetries, 2);
  assert.equal(s.readOnlyRoot, true);
  assert.equal(s.userns, 'host');
  assert.throws(() => buildSpec(img({ Cmd: ['sh'] }), { name: '../x', args: [] }), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
});
