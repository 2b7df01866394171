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

test('the already-normal fast path agrees with split/join for every name of up to 5 chars over / . a NUL', () => {
  // the definition the fast path must match: drop "" and "." components, ".." is hostile
  const slow = (name: string): string | 'hostile' => {
    if (name.includes('\0')) return 'hostile';
    const parts: string[] = [];
    for (const p of name.split('/')) {
      if (p === '' || p === '.') continue;
      if (p === '..') return 'hostile';
      parts.push(p);
    }
    return parts.join('/');
  };
  const alphabet = ['/', '.', 'a', '\0'];
  let names = [''];
  let checked = 0;
  for (let len = 0; len <= 5; len++) {
    for (const n of names) {
      const want = slow(n);
      let got: string;
      try {
        got = normalizeEntryPath(n);
      } catch (e) {
        assert.equal((e as { code?: string }).code, 'HOSTILE_LAYER', JSON.stringify(n));
        got = 'hostile';
      }
      assert.equal(got, want, JSON.stringify(n));
      checked++;
    }
    names = names.flatMap((n) => alphabet.map((c) => n + c));
  }
  assert.equal(checked, (4 ** 6 - 1) / 3);
  // and the validator hands the builder that same path
  const v = new LayerValidator(defaultPolicy());
  assert.equal(v.check({ name: './x//y/', type: 'directory', size: 0 }), 'x/y');
  assert.equal(v.check({ name: 'x/y/.wh.z', type: 'file', size: 0 }), 'x/y/.wh.z');
});

test('writes through a symlink of this layer are rejected; it may be repeated but not replaced', () => {
  assert.throws(() => run([{ name: 'a', type: 'symlink', linkname: '/etc' }, { name: 'a/passwd' }]), hostile);
  assert.throws(() => run([{ name: 'a', type: 'symlink', linkname: 'x' }, { name: 'a/b/c/d' }]), hostile);
  for (const r of [{ name: 'a' }, { name: 'a', type: 'symlink', linkname: '/' }, { name: 'a', type: 'fifo' }, { name: 'a', type: 'character-device', devmajor: 0, devminor: 0 }]) {
    assert.throws(() => run([{ name: 'a', type: 'symlink', linkname: '/etc' }, r as EntryHeader]), { code: 'HOSTILE_LAYER', message: /replaces the symlink "a"/ });
  }
  run([{ name: 'a', type: 'symlink', linkname: '/etc' }, { name: 'a', type: 'symlink', linkname: '/etc' }, { name: 'b/a' }]);
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

const D = { type: 'directory' } as const;
const L = (name: string, linkname: string): EntryHeader => ({ name, type: 'symlink', linkname });

test('a directory with entries, whiteouts or an opaque marker below it cannot be replaced by a non-directory', () => {
  const replacements: EntryHeader[] = [L('d', '/etc'), { name: 'd' }, { name: 'd', type: 'fifo' }, { name: 'd', type: 'character-device', devmajor: 0, devminor: 0 }];
  const befores: EntryHeader[][] = [
    [{ name: 'd/', ...D }, { name: 'd/.wh.passwd' }], // the reproduced attack
    [{ name: 'd/.wh.passwd' }], // implied parent, no entry for d
    [{ name: 'd/', ...D }, { name: 'd/.wh..wh..opq' }],
    [{ name: 'd/x/.wh.y' }], // deeper
    [{ name: 'd/f' }],
    [{ name: 'd/', ...D }, { name: 'd/s', type: 'symlink', linkname: '/' }],
  ];
  for (const b of befores) {
    for (const r of replacements) {
      assert.throws(() => run([...b, r]), { code: 'HOSTILE_LAYER', message: /replaces directory "d"/ }, `${JSON.stringify(b)} + ${JSON.stringify(r)}`);
    }
    run([...b, { name: 'd/', ...D }]); // re-adding it as a directory is fine (tar keeps it)
  }
  run([{ name: 'd/', ...D }, L('d', '/etc')]); // an empty directory may become a symlink
  run([{ name: 'e/', ...D }, { name: 'e' }, { name: 'e/', ...D }, { name: 'e/f' }]); // and back
});

test('nothing, not even a whiteout or an opaque marker, goes below a symlink, file or device of this layer', () => {
  for (const parent of [L('d', '/etc'), L('d', '../../..'), { name: 'd' }, { name: 'd', type: 'fifo' }] as EntryHeader[]) {
    for (const child of ['d/.wh.passwd', 'd/.wh..wh..opq', 'd/x', 'd/x/.wh.y']) {
      assert.throws(() => run([parent, { name: child }]), hostile, `${parent.name} ${parent.type ?? ''} / ${child}`);
    }
    assert.throws(() => run([parent, { name: 'h', type: 'link', linkname: 'd/x' }]), hostile);
  }
  // re-added after replacement: file -> directory is a real directory again
  run([{ name: 'd' }, { name: 'd/', ...D }, { name: 'd/.wh.x' }]);
});

test('entries below a whiteout name are refused; below AUFS meta names they are skipped', () => {
  assert.throws(() => run([{ name: '.wh.d/x' }]), { code: 'HOSTILE_LAYER', message: /below the whiteout/ });
  assert.throws(() => run([{ name: 'a/.wh.d/.wh.x' }]), hostile);
  const v = run([{ name: '.wh..wh.plnk/', ...D }, { name: '.wh..wh.plnk/1.2' }, { name: 'f' }]);
  assert.deepEqual(v.plan(), { whiteouts: [], opaques: [] });
  assert.throws(() => run([{ name: '.wh..wh.plnk/1.2' }, { name: 'h', type: 'link', linkname: '.wh..wh.plnk/1.2' }]), hostile);
});

test('hardlinks to entries below a replaced path are impossible', () => {
  assert.throws(() => run([{ name: 'd/', ...D }, { name: 'd/f' }, L('d', '/'), { name: 'h', type: 'link', linkname: 'd/f' }]), hostile);
  // the target's parent is re-checked at link time
  assert.throws(() => run([{ name: 'a', ...D }, L('b', 'a'), { name: 'h', type: 'link', linkname: 'b/f' }]), hostile);
});
