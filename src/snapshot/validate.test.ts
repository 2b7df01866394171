import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LayerValidator, normalizeEntryPath, type EntryHeader } from './validate.ts';
import { defaultPolicy } from './types.ts';

function run(entries: EntryHeader[], over = {}): LayerValidator {
  const v = new LayerValidator(defaultPolicy({ allowDevices: true, ...over }));
  for (const e of entries) v.check({ type: 'file', size: 0, ...e });
  return v;
}

const hostile = { code: 'HOSTILE_LAYER' };

test('normalises absolute and ./ names, rejects ..', () => {
  assert.equal(normalizeEntryPath('/abs//x/./y/'), 'abs/x/y');
  assert.equal(normalizeEntryPath('./'), '');
  assert.throws(() => normalizeEntryPath('a/../b'), hostile);
  assert.throws(() => normalizeEntryPath('..'), hostile);
});

test('writes through a symlink of this layer are rejected, replacing it is fine', () => {
  assert.throws(() => run([{ name: 'a', type: 'symlink', linkname: '/etc' }, { name: 'a/passwd' }]), hostile);
  assert.throws(() => run([{ name: 'a', type: 'symlink', linkname: 'x' }, { name: 'a/b/c/d' }]), hostile);
  run([{ name: 'a', type: 'symlink', linkname: '/etc' }, { name: 'a' }, { name: 'b/a' }]);
  assert.throws(() => run([{ name: 'a', type: 'symlink', linkname: '/etc' }, { name: 'a', type: 'directory' }]), hostile);
});

test('hardlinks must name an earlier, still present, non-directory entry', () => {
  run([{ name: 'f' }, { name: 'h', type: 'link', linkname: '/f' }]);
  assert.throws(() => run([{ name: 'h', type: 'link', linkname: 'f' }]), hostile);
  assert.throws(() => run([{ name: 'd', type: 'directory' }, { name: 'h', type: 'link', linkname: 'd' }]), hostile);
  assert.throws(() => run([{ name: 'd', type: 'directory' }, { name: 'd/f' }, { name: 'd', type: 'symlink', linkname: '/' }, { name: 'h', type: 'link', linkname: 'd/f' }]), hostile);
});

test('devices follow policy; char 0/0 is always allowed', () => {
  run([{ name: 'c', type: 'character-device', devmajor: 0, devminor: 0 }], { allowDevices: false });
  assert.throws(() => run([{ name: 'c', type: 'character-device', devmajor: 1, devminor: 3 }], { allowDevices: false }), hostile);
  run([{ name: 'c', type: 'block-device', devmajor: 8, devminor: 0 }]);
});

test('limits: entries, bytes (sparse real size counts)', () => {
  assert.throws(() => run([{ name: 'a' }, { name: 'b' }, { name: 'c' }], { maxEntries: 2 }), hostile);
  assert.throws(() => run([{ name: 'a', size: 10 }, { name: 'b', size: 10 }], { maxBytes: 15 }), hostile);
  assert.throws(() => run([{ name: 'x', size: 1, pax: { 'GNU.sparse.name': 's', 'GNU.sparse.realsize': '1000' } }], { maxBytes: 100 }), hostile);
});

test('non-file entries with data and unknown types are refused', () => {
  assert.throws(() => run([{ name: 's', type: 'symlink', linkname: 'x', size: 5 }]), hostile);
  assert.throws(() => run([{ name: 'v', type: null }]), { code: 'UNSUPPORTED' });
});

test('whiteout plan: .wh.NAME, opaque, meta ignored, same-layer entry wins', () => {
  const v = run([
    { name: 'etc/.wh.motd' }, { name: '.wh.top' }, { name: 'opt/d/.wh..wh..opq' }, { name: '.wh..wh.plnk' },
    { name: 'x/.wh.keep' }, { name: 'x/keep' },
  ]);
  assert.deepEqual(v.plan(), { whiteouts: ['etc/motd', 'top'], opaques: ['opt/d'] });
  assert.throws(() => run([{ name: 'a/.wh...' }]), hostile);
});
