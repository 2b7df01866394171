import { test } from 'node:test';
import assert from 'node:assert/strict';
import { overlayOptions, EMPTY_LOWER } from './mount.ts';

test('lowerdir lists the top layer first; one layer gets an empty bottom', () => {
  assert.equal(overlayOptions(['dir/a/fs', 'mnt/b']), 'ro,lowerdir=mnt/b:dir/a/fs');
  assert.equal(overlayOptions(['mnt/a']), `ro,lowerdir=mnt/a:${EMPTY_LOWER}`);
  assert.equal(overlayOptions(['a', 'b'], true, true), 'ro,lowerdir=b:a,userxattr');
});

test('rejects separators in paths and too many layers', () => {
  assert.throws(() => overlayOptions(['a:b']), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => overlayOptions(Array.from({ length: 80 }, (_, i) => `mnt/${String(i).padStart(64, '0')}`)), { code: 'UNSUPPORTED' });
});
