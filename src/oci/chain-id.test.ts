import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chainId, chainIds } from './chain-id.ts';
import { parseDigest } from '../base/digest.ts';

const a = parseDigest(`sha256:${'a'.repeat(64)}`);
const b = parseDigest(`sha256:${'b'.repeat(64)}`);
const c = parseDigest(`sha256:${'c'.repeat(64)}`);

test('chainID of one layer is its diffID', () => {
  assert.equal(chainId([a]), a);
});

test('chainID follows the OCI recursion', () => {
  const ab = `sha256:${createHash('sha256').update(`${a} ${b}`).digest('hex')}`;
  const abc = `sha256:${createHash('sha256').update(`${ab} ${c}`).digest('hex')}`;
  assert.deepEqual(chainIds([a, b, c]), [a, ab, abc]);
  assert.equal(chainId([a, b, c]), abc);
});

test('chainID of nothing is an error', () => {
  assert.throws(() => chainId([]), { code: 'INVALID_ARGUMENT' });
});
