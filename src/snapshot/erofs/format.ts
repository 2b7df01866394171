/**
 * @module snapshot/erofs/format
 * The EROFS on-disk structures this writer emits, as encoders into caller-owned buffers.
 * Facts from the kernel's fs/erofs/erofs_fs.h and Documentation/filesystems/erofs.rst
 * (the uncompressed subset that every kernel ≥ 5.4 and erofs-utils 1.5 read):
 *
 * - 4 KiB blocks; the superblock is 128 bytes at byte 1024 of block 0.
 * - Inodes sit in 32-byte slots; nid = (offset - meta_blkaddr * 4096) / 32. The root nid is
 *   16 bits, so the root inode goes first in the metadata area.
 * - Compact inode (32 B): 16-bit uid/gid/nlink, 32-bit size, mtime = superblock build time.
 *   Extended inode (64 B): 32-bit uid/gid/nlink, 64-bit size, own mtime + nsec.
 * - Data layouts: FLAT_PLAIN (ceil(size/4096) contiguous blocks from raw_blkaddr) and
 *   FLAT_INLINE (floor(size/4096) blocks, then the tail right after the inode and its
 *   xattrs, never crossing a block boundary).
 * - Xattrs follow the inode: a 12-byte ibody header, 4-byte ids of shared entries (offset
 *   xattr_blkaddr * 4096 + id * 4), then inline entries {name_len, name_index, value_size,
 *   name suffix, value} each padded to 4 bytes. i_xattr_icount = (ibody size - 12) / 4 + 1.
 * - Directory data: per block, 12-byte dirents {nid le64, nameoff le16, file_type u8, 0},
 *   then the names (no NUL; the last one ends at the block's used size or a NUL pad). All
 *   names of a directory, "." and ".." included, are sorted bytewise across its blocks
 *   (the kernel looks names up by binary search).
 */

export const BLOCK_BITS = 12;
export const BLOCK = 1 << BLOCK_BITS;
export const SUPER_OFFSET = 1024;
export const MAGIC = 0xe0f5e1e2;
export const SLOT = 32;
export const COMPACT_SIZE = 32;
export const EXTENDED_SIZE = 64;
export const DIRENT_SIZE = 12;
export const XATTR_IBODY_HEADER = 12;
export const XATTR_ENTRY_HEADER = 4;
export const NAME_MAX = 255;

export const LAYOUT_FLAT_PLAIN = 0;
export const LAYOUT_FLAT_INLINE = 2;

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** Dirent file types (EROFS_FT_*). */
export function fileType(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFREG: return 1;
    case S_IFDIR: return 2;
    case S_IFCHR: return 3;
    case S_IFBLK: return 4;
    case S_IFIFO: return 5;
    case S_IFSOCK: return 6;
    case S_IFLNK: return 7;
    default: return 0;
  }
}

/** Xattr name prefixes (EROFS_XATTR_INDEX_*): [index, prefix]; prefix matched literally. */
const XATTR_PREFIXES: ReadonlyArray<readonly [number, string]> = [
  [1, 'user.'],
  [2, 'system.posix_acl_access'],
  [3, 'system.posix_acl_default'],
  [4, 'trusted.'],
  [5, 'lustre.'],
  [6, 'security.'],
];

/** Splits an xattr name into its index and suffix; undefined when EROFS cannot name it. */
export function xattrIndex(name: string): { index: number; suffix: string } | undefined {
  for (const [index, prefix] of XATTR_PREFIXES) {
    if (name.startsWith(prefix)) {
      const suffix = name.slice(prefix.length);
      // the ACL names are complete names, not prefixes
      if ((index === 2 || index === 3) && suffix !== '') return undefined;
      if ((index !== 2 && index !== 3) && suffix === '') return undefined;
      return { index, suffix };
    }
  }
  return undefined;
}

export function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Size of one xattr entry (inline or shared) with its padding. */
export function xattrEntrySize(suffixLen: number, valueLen: number): number {
  return align(XATTR_ENTRY_HEADER + suffixLen + valueLen, 4);
}

/** Writes one xattr entry at off; returns the offset after its padding. */
export function writeXattrEntry(buf: Buffer, off: number, index: number, suffix: Buffer, value: Buffer): number {
  buf[off] = suffix.length;
  buf[off + 1] = index;
  buf.writeUInt16LE(value.length, off + 2);
  suffix.copy(buf, off + 4);
  value.copy(buf, off + 4 + suffix.length);
  const end = off + XATTR_ENTRY_HEADER + suffix.length + value.length;
  const padded = align(end - off, 4) + off;
  buf.fill(0, end, padded);
  return padded;
}

export interface SuperBlock {
  rootNid: number;
  inodes: number;
  buildTime: number;
  buildTimeNsec: number;
  blocks: number;
  metaBlkaddr: number;
  xattrBlkaddr: number;
}

/** The 128-byte superblock (no checksum feature: nothing to keep in sync). */
export function encodeSuperBlock(sb: SuperBlock): Buffer {
  if (sb.rootNid > 0xffff) throw new RangeError('root nid must fit 16 bits');
  const b = Buffer.alloc(128);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(0, 4); // checksum (feature off)
  b.writeUInt32LE(0, 8); // feature_compat
  b[12] = BLOCK_BITS;
  b[13] = 0; // sb_extslots
  b.writeUInt16LE(sb.rootNid, 14);
  b.writeBigUInt64LE(BigInt(sb.inodes), 16);
  b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(sb.buildTime)), 24);
  b.writeUInt32LE(sb.buildTimeNsec, 32);
  b.writeUInt32LE(sb.blocks, 36);
  b.writeUInt32LE(sb.metaBlkaddr, 40);
  b.writeUInt32LE(sb.xattrBlkaddr, 44);
  // uuid, volume name: zero (reproducible images); feature_incompat 0
  return b;
}

export interface InodeFields {
  mode: number;
  nlink: number;
  size: number;
  /** raw_blkaddr for data layouts, the encoded rdev for devices. */
  iu: number;
  ino: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  xattrIcount: number;
  layout: number;
}

/** Linux's new_encode_dev: what the kernel decodes from i_u.rdev. */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

// Byte stores instead of Buffer#writeUInt*LE: a one-shot pull writes every inode with
// cold code, where each of those calls (argument checks, bounds checks) costs several
// times the stores. The range checks that matter stay.
export function put16(b: Buffer, o: number, v: number): void {
  if ((v & 0xffff) !== v) throw new RangeError(`${v} does not fit 16 bits`);
  b[o] = v & 0xff;
  b[o + 1] = v >>> 8;
}

export function put32(b: Buffer, o: number, v: number): void {
  if (v >>> 0 !== v) throw new RangeError(`${v} does not fit 32 bits`);
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = v >>> 24;
}

export function writeCompactInode(buf: Buffer, off: number, f: InodeFields): void {
  if (off < 0 || off + COMPACT_SIZE > buf.length) throw new RangeError('inode outside the buffer');
  put16(buf, off, (f.layout << 1) | 0);
  put16(buf, off + 2, f.xattrIcount);
  put16(buf, off + 4, f.mode & 0xffff);
  put16(buf, off + 6, f.nlink);
  put32(buf, off + 8, f.size);
  put32(buf, off + 12, 0);
  put32(buf, off + 16, f.iu >>> 0);
  put32(buf, off + 20, f.ino >>> 0);
  put16(buf, off + 24, f.uid);
  put16(buf, off + 26, f.gid);
  put32(buf, off + 28, 0);
}

/** A 64-bit little-endian integer from a safe JS number (negative: two's complement). */
export function writeU64(buf: Buffer, v: number, off: number): void {
  if (!Number.isSafeInteger(v)) throw new RangeError(`${v} is not a safe integer`);
  if (off < 0 || off + 8 > buf.length) throw new RangeError('u64 outside the buffer');
  const hi = Math.floor(v / 0x100000000);
  put32(buf, off, v - hi * 0x100000000);
  put32(buf, off + 4, hi >>> 0); // two's complement for negative values
}

export function writeExtendedInode(buf: Buffer, off: number, f: InodeFields): void {
  if (off < 0 || off + EXTENDED_SIZE > buf.length) throw new RangeError('inode outside the buffer');
  put16(buf, off, (f.layout << 1) | 1);
  put16(buf, off + 2, f.xattrIcount);
  put16(buf, off + 4, f.mode & 0xffff);
  put16(buf, off + 6, 0);
  writeU64(buf, f.size, off + 8);
  put32(buf, off + 16, f.iu >>> 0);
  put32(buf, off + 20, f.ino >>> 0);
  put32(buf, off + 24, f.uid >>> 0);
  put32(buf, off + 28, f.gid >>> 0);
  writeU64(buf, f.mtime, off + 32);
  put32(buf, off + 40, f.mtimeNsec);
  put32(buf, off + 44, f.nlink >>> 0);
  for (let i = off + 48; i < off + 64; i++) buf[i] = 0;
}
