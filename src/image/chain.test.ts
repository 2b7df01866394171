import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chainIds } from './chain.ts';
import { sha256, type Digest } from '../base/digest.ts';

test('chain IDs follow the image spec', () => {
  const a = sha256('a');
  const b = sha256('b');
  const c = sha256('c');
  const ids = chainIds([a, b, c] as Digest[]);
  assert.equal(ids[0], a);
  assert.equal(ids[1], sha256(`${a} ${b}`));
  assert.equal(ids[2], sha256(`${ids[1]} ${c}`));
  assert.deepEqual(chainIds([]), []);
});
