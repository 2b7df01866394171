import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../base/errors.ts';
import { RuntimeRegistry, type Runtime } from './runtime.ts';

const fake = (name: string): Runtime => ({ name }) as Runtime;

test('registry: backends by name, unknown names list the known ones', () => {
  const r = new RuntimeRegistry().register('nspawn', () => fake('nspawn')).register('bwrap', () => fake('bwrap'));
  assert.deepEqual(r.names(), ['bwrap', 'nspawn']);
  assert.equal(r.create('bwrap', { storeRoot: '/x' }).name, 'bwrap');
  assert.throws(() => r.get('runc'), (e) => isBerthError(e, 'NOT_FOUND') && /known: bwrap, nspawn/.test(e.message));
  assert.throws(() => r.register('bwrap', () => fake('bwrap')), (e) => isBerthError(e, 'ALREADY_EXISTS'));
  assert.throws(() => r.register('Bad Name', () => fake('x')), (e) => isBerthError(e, 'INVALID_ARGUMENT'));
  const liar = new RuntimeRegistry().register('a', () => fake('b'));
  assert.throws(() => liar.create('a', { storeRoot: '/x' }), (e) => isBerthError(e, 'INTERNAL'));
});
