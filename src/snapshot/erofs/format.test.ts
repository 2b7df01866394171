import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeDev, encodeSuperBlock, fileType, MAGIC, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, writeExtendedInode, writeU64, xattrEntrySize, xattrIndex } from './format.ts';

test('device numbers use the kernel\'s new_encode_dev layout', () => {
  assert.equal(encodeDev(1, 3), 0x103);
  assert.equal(encodeDev(8, 0), 0x800);
  // minor bits above 8 go above the 12 major bits
  assert.equal(encodeDev(300, 70000), ((70000 & 0xff) | (300 << 8) | ((70000 & ~0xff) << 12)) >>> 0);
  assert.equal(encodeDev(0, 0), 0); // an overlay whiteout
});

test('64-bit fields: sizes over 4 GiB and negative mtimes in two\'s complement', () => {
  const b = Buffer.alloc(8);
  writeU64(b, 5 * 1024 ** 3 + 3, 0);
  assert.equal(b.readBigUInt64LE(0), BigInt(5 * 1024 ** 3 + 3));
  writeU64(b, -2, 0);
  assert.equal(b.readBigInt64LE(0), -2n);
  writeU64(b, -(2 ** 40) - 5, 0);
  assert.equal(b.readBigInt64LE(0), BigInt(-(2 ** 40) - 5));
  const ino = Buffer.alloc(64);
  writeExtendedInode(ino, 0, { mode: S_IFREG | 0o4755, nlink: 70000, size: 2 ** 33, iu: 7, ino: 9, uid: 4e9, gid: 5, mtime: -1, mtimeNsec: 5e8, xattrIcount: 3, layout: 2 });
  assert.equal(ino.readUInt16LE(0), (2 << 1) | 1);
  assert.equal(ino.readBigUInt64LE(8), 2n ** 33n);
  assert.equal(ino.readUInt32LE(24), 4e9);
  assert.equal(ino.readBigInt64LE(32), -1n);
  assert.equal(ino.readUInt32LE(44), 70000);
});

test('xattr names map to EROFS prefix indexes; others are not representable', () => {
  assert.deepEqual(xattrIndex('user.foo'), { index: 1, suffix: 'foo' });
  assert.deepEqual(xattrIndex('system.posix_acl_access'), { index: 2, suffix: '' });
  assert.deepEqual(xattrIndex('trusted.overlay.opaque'), { index: 4, suffix: 'overlay.opaque' });
  assert.deepEqual(xattrIndex('security.capability'), { index: 6, suffix: 'capability' });
  assert.equal(xattrIndex('system.other'), undefined);
  assert.equal(xattrIndex('user.'), undefined);
  assert.equal(xattrIndex('system.posix_acl_accessx'), undefined);
  assert.equal(xattrEntrySize(10, 3), 20); // 4 + 13, padded to 4
});

test('superblock and dirent types', () => {
  const sb = encodeSuperBlock({ rootNid: 0, inodes: 3, buildTime: 1, buildTimeNsec: 2, blocks: 4, metaBlkaddr: 3, xattrBlkaddr: 0 });
  assert.equal(sb.length, 128);
  assert.equal(sb.readUInt32LE(0), MAGIC);
  assert.equal(sb[12], 12);
  assert.throws(() => encodeSuperBlock({ rootNid: 70000, inodes: 1, buildTime: 0, buildTimeNsec: 0, blocks: 1, metaBlkaddr: 1, xattrBlkaddr: 0 }));
  assert.deepEqual([S_IFREG, S_IFDIR, S_IFCHR, S_IFLNK].map(fileType), [1, 2, 3, 7]);
});
