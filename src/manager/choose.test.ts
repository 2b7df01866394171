import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseRuntime, runtimesFor } from './choose.ts';
import { isBerthError } from '../base/errors.ts';

const known = ['bwrap', 'nspawn'];

test('root gets nspawn, any other user bwrap', () => {
  assert.equal(chooseRuntime({ uid: 0, known }), 'nspawn');
  assert.equal(chooseRuntime({ uid: 1000, known }), 'bwrap');
  assert.equal(chooseRuntime({ uid: 1000, known, env: '' }), 'bwrap');
  assert.deepEqual(runtimesFor(0), ['nspawn']);
  assert.deepEqual(runtimesFor(65534), ['bwrap']);
});

test('--runtime beats BERTH_RUNTIME; both must name a runtime that works for the caller', () => {
  assert.equal(chooseRuntime({ uid: 0, known, flag: 'nspawn', env: 'bwrap' }), 'nspawn');
  assert.equal(chooseRuntime({ uid: 1000, known, env: 'bwrap' }), 'bwrap');
  const refused = (i: Parameters<typeof chooseRuntime>[0], code: string, re: RegExp) =>
    assert.throws(() => chooseRuntime(i), (e) => isBerthError(e) && e.code === code && re.test(e.message));
  refused({ uid: 1000, known, flag: 'nspawn' }, 'PERMISSION_DENIED', /--runtime=nspawn: .*needs root/);
  refused({ uid: 1000, known, env: 'nspawn' }, 'PERMISSION_DENIED', /BERTH_RUNTIME=nspawn/);
  refused({ uid: 0, known, flag: 'bwrap' }, 'PERMISSION_DENIED', /--user NAME/);
  refused({ uid: 0, known, flag: 'runc' }, 'INVALID_ARGUMENT', /unknown runtime "runc" \(known: bwrap, nspawn\)/);
  refused({ uid: 0, known, flag: '../x' }, 'INVALID_ARGUMENT', /unknown runtime/);
});

test('zones are the nspawn runtime\'s: a user\'s runtime refuses `berth zone` clearly', async () => {
  const { requireZones, BACKEND_NAMES } = await import('./backends.ts');
  assert.deepEqual(BACKEND_NAMES, ['bwrap', 'nspawn']);
  requireZones('nspawn');
  assert.throws(() => requireZones('bwrap'), (e) => isBerthError(e, 'UNSUPPORTED') && /network zones belong to root's containers/.test((e as Error).message));
});
