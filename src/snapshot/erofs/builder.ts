/**
 * @module snapshot/erofs/builder
 * Builds one EROFS image from one layer's tar stream, in a single pass over the stream:
 *
 *   block 0            superblock (written last: a torn image has no magic)
 *   data area          file data in arrival order, written as it streams (holes of
 *                      sparse files stay holes in the image file)
 *   directory blocks   full dirent blocks (small directories live inline, in meta)
 *   shared xattrs      entries carried by ≥ 2 inodes
 *   meta area          inodes (root first: its nid is 16 bits), each followed by its
 *                      xattrs and its inline tail (last partial block of data)
 *
 * Every header is checked by LayerValidator first. The layer's final state is an
 * in-memory tree (LayerTree): a replaced entry takes its children, whiteouts, opaque
 * marker and hardlink name with it by construction, and no host path is ever involved,
 * so building needs no privilege (owners and device numbers are just fields).
 * OCI whiteouts become overlay whiteouts (char 0/0), opaque markers the xattr
 * `<prefix>opaque=y`; overlay xattrs carried by the layer itself are dropped (a layer
 * must not steer overlayfs), as are xattrs outside the namespaces EROFS can name.
 *
 * Memory: the tree (≈ 200-300 bytes per entry) plus the inline tails (< 4 KiB per file),
 * which spill to a scratch file beyond TAIL_MEMORY; file data never stays in memory.
 */
import { closeSync, openSync, readSync, writeSync, unlinkSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { BerthError, fromSystemError } from '../../base/errors.ts';
import { LayerValidator, normalizeEntryPath, WH_META_PREFIX, WH_OPAQUE, WH_PREFIX } from '../validate.ts';
import type { ExtractPolicy } from '../types.ts';
import {
  BLOCK, COMPACT_SIZE, DIRENT_SIZE, EXTENDED_SIZE, LAYOUT_FLAT_INLINE, LAYOUT_FLAT_PLAIN, NAME_MAX, SLOT, SUPER_OFFSET,
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, XATTR_IBODY_HEADER, align, encodeDev, encodeSuperBlock, fileType, put16,
  writeCompactInode, writeExtendedInode, writeU64, writeXattrEntry, xattrEntrySize, xattrIndex, type InodeFields,
} from './format.ts';
import type { TarEntry, TarSink } from './tar.ts';

const TAIL_CHUNK = 4 << 20;
/** Inline tails kept in memory before spilling to the scratch file. */
const TAIL_MEMORY = 64 << 20;
/** Data bytes buffered before a write is issued, and in flight before the parser waits. */
const WRITE_BATCH = 4 << 20;
const MAX_INFLIGHT = 32 << 20;
const MAX_SYMLINK = 4095;

class Inode {
  mode = 0;
  uid = 0;
  gid = 0;
  mtime = 0;
  mtimeNsec = 0;
  size = 0;
  /** First data block (files, symlinks, dirs) or encoded rdev (devices). */
  iu = 0;
  /** Offset of the inline tail in the TailStore; -1: none (FLAT_PLAIN). */
  tail = -1;
  xattrs: number[] | null = null;
  /** Set for directories only (keeps leaf inodes small: a layer may have millions). */
  dir: DirInfo | null = null;
  nlink = 0;
  nid = 0;
}

class DirInfo {
  readonly children = new Map<string, Inode>();
  whiteouts: Set<string> | null = null;
  opaque = false;
  // layout (finish)
  parent: Inode | null = null;
  names: string[] | null = null;
  blockStarts: number[] | null = null;
}

const dirOf = (n: Inode): DirInfo => n.dir as DirInfo;

/** Append-only store of small tails: 4 MiB chunks, the oldest spilled to a file when big. */
class TailStore {
  private readonly chunks: Array<Buffer | null> = [];
  private fill = TAIL_CHUNK;
  private inMemory = 0;
  private spillFd = -1;
  private readonly spillPath: string;
  private spilled = 0; // chunks[0..spilled) are in the file
  private cacheIdx = -1;
  private cache: Buffer | null = null;

  constructor(spillPath: string) {
    this.spillPath = spillPath;
  }

  append(b: Buffer): number {
    const off = this.reserve(b.length);
    b.copy(this.view as Buffer);
    return off;
  }

  /** The last reserve()'s bytes, to be filled by the caller. */
  view: Buffer | null = null;

  /** Reserves len bytes (zero-filled) and returns their offset; `view` points at them. */
  reserve(len: number): number {
    if (this.chunks.length === 0 || this.fill + len > TAIL_CHUNK) {
      this.chunks.push(Buffer.alloc(TAIL_CHUNK)); // zeroed: holes in tails need no fill
      this.fill = 0;
      this.inMemory += TAIL_CHUNK;
      while (this.inMemory > TAIL_MEMORY) this.spillOne();
    }
    const idx = this.chunks.length - 1;
    const off = idx * TAIL_CHUNK + this.fill;
    this.view = (this.chunks[idx] as Buffer).subarray(this.fill, this.fill + len);
    this.fill += len;
    return off;
  }

  private spillOne(): void {
    if (this.spillFd < 0) {
      this.spillFd = openSync(this.spillPath, 'w+', 0o600);
      unlinkSync(this.spillPath); // lives as long as the fd: nothing to clean up
    }
    const c = this.chunks[this.spilled] as Buffer;
    writeSync(this.spillFd, c, 0, c.length, this.spilled * TAIL_CHUNK);
    this.chunks[this.spilled] = null;
    this.spilled++;
    this.inMemory -= TAIL_CHUNK;
  }

  /** Copies the len bytes at off into target at targetOff (no view is made: one per inode, cold, costs). */
  copyTo(off: number, len: number, target: Buffer, targetOff: number): void {
    const idx = Math.floor(off / TAIL_CHUNK);
    const at = off - idx * TAIL_CHUNK;
    let c = this.chunks[idx];
    if (!c) {
      if (this.cacheIdx !== idx) {
        this.cache ??= Buffer.allocUnsafe(TAIL_CHUNK);
        readSync(this.spillFd, this.cache, 0, TAIL_CHUNK, idx * TAIL_CHUNK);
        this.cacheIdx = idx;
      }
      c = this.cache as Buffer;
    }
    target.set(new Uint8Array(c.buffer, c.byteOffset + at, len), targetOff);
  }

  close(): void {
    if (this.spillFd >= 0) closeSync(this.spillFd);
    this.spillFd = -1;
  }
}

/** Sequential positional writer with batching and a bound on bytes in flight. */
class ImageWriter {
  readonly fh: FileHandle;
  pos = BLOCK; // block 0 is the superblock, written last
  private pending: Buffer[] = [];
  private pendingStart = 0;
  private pendingLen = 0;
  private readonly inflight = new Set<Promise<void>>();
  inflightBytes = 0;
  private error: unknown;
  writeMs = 0;

  constructor(fh: FileHandle) {
    this.fh = fh;
  }

  write(b: Buffer): void {
    if (b.length === 0) return;
    if (this.pendingLen === 0) this.pendingStart = this.pos;
    this.pending.push(b);
    this.pendingLen += b.length;
    this.pos += b.length;
    if (this.pendingLen >= WRITE_BATCH) this.flush();
  }

  /** Advances without writing (a hole in the image file reads as zeros). */
  skip(n: number): void {
    if (n === 0) return;
    this.flush();
    this.pos += n;
  }

  flush(): void {
    if (this.pendingLen === 0) return;
    const bufs = this.pending; // libuv splits writev at IOV_MAX itself: no copy
    const start = this.pendingStart;
    const len = this.pendingLen;
    this.pending = [];
    this.pendingLen = 0;
    this.inflightBytes += len;
    const t0 = performance.now();
    const p = writeAll(this.fh, bufs, start).then(
      () => {
        this.writeMs += performance.now() - t0;
      },
      (e: unknown) => {
        this.error ??= e;
      },
    ).finally(() => {
      this.inflight.delete(p);
      this.inflightBytes -= len;
    });
    this.inflight.add(p);
  }

  /** Resolves once few enough bytes are in flight; rejects with the first write error. */
  async backpressure(limit = MAX_INFLIGHT): Promise<void> {
    while (this.inflightBytes > limit && this.inflight.size > 0) await Promise.race(this.inflight);
    if (this.error !== undefined) throw fromSystemError(this.error);
  }

  async drain(): Promise<void> {
    this.flush();
    await this.backpressure(0);
  }
}

async function writeAll(fh: FileHandle, bufs: Buffer[], pos: number): Promise<void> {
  let { bytesWritten } = await fh.writev(bufs, pos);
  const total = bufs.reduce((s, b) => s + b.length, 0);
  if (bytesWritten === total) return;
  const rest = Buffer.concat(bufs, total).subarray(bytesWritten);
  let off = 0;
  while (off < rest.length) {
    ({ bytesWritten } = await fh.write(rest, off, rest.length - off, pos + bytesWritten + off));
    off += bytesWritten;
  }
}

function hostile(name: string, why: string): BerthError {
  const shown = Buffer.from(name, 'latin1').toString('utf8');
  return new BerthError('HOSTILE_LAYER', `hostile layer: entry "${shown}": ${why}`, { details: { entry: shown } });
}

export interface BuildStats {
  entries: number;
  inodes: number;
  /** Image size in bytes. */
  imageBytes: number;
  /** Milliseconds spent parsing + validating + tree building (synchronous CPU). */
  parseMs: number;
  /** Milliseconds spent laying out and writing metadata at the end. */
  finishMs: number;
}

/**
 * The TarSink that turns entries into the image. Use: feed a TarParser with it, await
 * `backpressure()` between chunks, then `finish()`. On error, close the file handle
 * and remove the image (the caller owns both).
 */
export class LayerImageBuilder implements TarSink {
  private readonly validator: LayerValidator;
  private readonly policy: ExtractPolicy;
  private readonly out: ImageWriter;
  private readonly tails: TailStore;
  private readonly root = new Inode();
  private readonly leaves: Inode[] = [];
  private dirCount = 1;
  // xattr interning
  private readonly xKeys = new Map<string, number>();
  private readonly xIndex: number[] = [];
  private readonly xSuffix: Buffer[] = [];
  private readonly xValue: Buffer[] = [];
  // current file receiving data
  private cur: Inode | null = null;
  private curPos = 0;
  private curPlain = 0;
  private curTail: Buffer | null = null;
  private curSkip = false;
  // the last parent directory looked up: layers list a directory's entries together
  private lastParentPath: string | null = null;
  private lastParent: Inode | null = null;

  constructor(fh: FileHandle, policy: ExtractPolicy, spillPath: string) {
    this.policy = policy;
    this.validator = new LayerValidator(policy);
    this.out = new ImageWriter(fh);
    this.tails = new TailStore(spillPath);
    this.root.mode = S_IFDIR | 0o755;
    this.root.dir = new DirInfo();
  }

  get entries(): number {
    return this.validator.entries;
  }

  backpressure(): Promise<void> | undefined {
    return this.out.backpressure();
  }

  // ------------------------------------------------------------------ TarSink

  entry(e: TarEntry): void {
    // the validator's normalised path of e.name (the parser applied GNU.sparse.name already)
    const path = this.validator.check({
      name: e.name, type: e.type, size: e.size, linkname: e.linkname, devmajor: e.devmajor, devminor: e.devminor,
      pax: e.sparse ? { 'GNU.sparse.realsize': String(e.realSize) } : null,
    });
    // fields that must fit the image (a base-256 or PAX number can say anything)
    if (e.uid < 0 || e.uid > 0xffffffff || e.gid < 0 || e.gid > 0xffffffff) throw hostile(e.name, `uid/gid ${e.uid}:${e.gid} out of range`);
    if (e.devmajor < 0 || e.devmajor > 0xfff || e.devminor < 0 || e.devminor > 0xfffff) {
      throw hostile(e.name, `device number ${e.devmajor}:${e.devminor} out of range`);
    }
    this.cur = null;
    this.curSkip = true;
    if (path === null) return; // below an AUFS meta name: dropped, as the dir format's tar does
    if (path === '') {
      this.setMeta(this.root, e, S_IFDIR);
      return;
    }
    const slash = path.lastIndexOf('/');
    const base = path.slice(slash + 1);
    if (base.length > NAME_MAX) throw hostile(e.name, `name component longer than ${NAME_MAX} bytes`);
    const dir = this.parentDir(e.name, slash < 0 ? '' : path.slice(0, slash));
    if (base.startsWith(WH_PREFIX)) {
      const info = dirOf(dir);
      if (base === WH_OPAQUE) info.opaque = true;
      else if (!base.startsWith(WH_META_PREFIX)) (info.whiteouts ??= new Set()).add(base.slice(WH_PREFIX.length));
      return; // a whiteout's own data (if any) is dropped
    }
    const kids = dirOf(dir).children;
    const existing = kids.get(base);
    if (existing?.dir && e.type !== 'directory') this.lastParentPath = null; // a cached parent may be below it
    switch (e.type) {
      case 'directory': {
        if (existing?.dir) {
          this.setMeta(existing, e, S_IFDIR); // re-added directory: keeps its children
          return;
        }
        const d = new Inode();
        d.dir = new DirInfo();
        this.setMeta(d, e, S_IFDIR);
        kids.set(base, d);
        this.dirCount++;
        return;
      }
      case 'link': {
        const target = this.lookup(e.name, normalizeEntryPath(e.linkname));
        kids.set(base, target);
        return;
      }
      case 'symlink': {
        const target = Buffer.from(e.linkname, 'latin1');
        if (target.length > MAX_SYMLINK) throw hostile(e.name, `symlink target longer than ${MAX_SYMLINK} bytes`);
        const n = this.leaf(e, S_IFLNK);
        n.size = target.length;
        if (this.inlinable(n, target.length)) {
          n.tail = this.tails.append(target);
        } else {
          n.iu = this.out.pos / BLOCK;
          this.out.write(target);
          this.out.skip(align(target.length, BLOCK) - target.length);
        }
        kids.set(base, n);
        return;
      }
      case 'character-device':
      case 'block-device': {
        const n = this.leaf(e, e.type === 'block-device' ? S_IFBLK : S_IFCHR);
        n.iu = encodeDev(e.devmajor, e.devminor);
        kids.set(base, n);
        return;
      }
      case 'fifo':
        kids.set(base, this.leaf(e, S_IFIFO));
        return;
      case 'file':
      case 'contiguous-file': {
        const n = this.leaf(e, S_IFREG);
        n.size = e.realSize;
        const tailLen = n.size % BLOCK;
        const inline = tailLen > 0 && this.inlinable(n, tailLen);
        this.curPlain = inline ? n.size - tailLen : n.size;
        if (inline) {
          n.tail = this.tails.reserve(tailLen);
          this.curTail = this.tails.view;
        } else {
          this.curTail = null;
        }
        this.curPos = 0;
        n.iu = this.out.pos / BLOCK;
        this.cur = n;
        this.curSkip = false;
        kids.set(base, n);
        return;
      }
      default:
        // the validator refuses every other type
        throw new BerthError('UNSUPPORTED', `layer entry "${e.name}": unsupported tar entry type`);
    }
  }

  data(b: Buffer): void {
    const n = this.cur;
    if (!n) {
      if (this.curSkip) return;
      throw new BerthError('CORRUPT', 'layer is not a valid tar: data outside a file');
    }
    let p = 0;
    if (this.curPos < this.curPlain) {
      const k = Math.min(b.length, this.curPlain - this.curPos);
      this.out.write(k === b.length ? b : b.subarray(0, k));
      p = k;
      this.curPos += k;
    }
    if (p < b.length) {
      const tail = this.curTail;
      const at = this.curPos - this.curPlain;
      if (!tail || at + b.length - p > tail.length) throw new BerthError('CORRUPT', 'layer is not a valid tar: file data beyond its size');
      tail.set(p === 0 ? b : new Uint8Array(b.buffer, b.byteOffset + p, b.length - p), at);
      this.curPos += b.length - p;
    }
  }

  hole(len: number): void {
    const n = this.cur;
    if (!n) return;
    let left = len;
    if (this.curPos < this.curPlain) {
      const k = Math.min(left, this.curPlain - this.curPos);
      this.out.skip(k);
      this.curPos += k;
      left -= k;
    }
    if (left > 0) {
      // the tail buffer is zero-filled already
      if (!this.curTail || this.curPos - this.curPlain + left > this.curTail.length) {
        throw new BerthError('CORRUPT', 'layer is not a valid tar: sparse hole beyond the file size');
      }
      this.curPos += left;
    }
  }

  end(): void {
    const n = this.cur;
    this.cur = null;
    if (!n) return;
    if (this.curPos !== n.size) throw new BerthError('CORRUPT', 'layer is not a valid tar: file shorter than its size');
    if (this.curTail) {
      this.curTail = null; // already in the tail store
    } else {
      this.out.skip(align(n.size, BLOCK) - n.size); // FLAT_PLAIN: the last block is padded
    }
  }

  // ------------------------------------------------------------------ tree

  private setMeta(n: Inode, e: TarEntry, type: number): void {
    n.mode = type | (e.mode & 0o7777);
    n.uid = e.uid;
    n.gid = e.gid;
    n.mtime = e.mtime;
    n.mtimeNsec = e.mtimeNsec;
    n.xattrs = this.internXattrs(e.xattrs);
  }

  private leaf(e: TarEntry, type: number): Inode {
    const n = new Inode();
    this.setMeta(n, e, type);
    this.leaves.push(n);
    return n;
  }

  /** The directory at `path` (created with 0755 root:root when missing). */
  private parentDir(rawName: string, path: string): Inode {
    let d = this.root;
    if (path === '') return d;
    if (path === this.lastParentPath) return this.lastParent as Inode;
    for (const c of path.split('/')) {
      const kids = dirOf(d).children;
      let next = kids.get(c);
      if (!next) {
        if (c.length > NAME_MAX) throw hostile(rawName, `name component longer than ${NAME_MAX} bytes`);
        next = new Inode();
        next.mode = S_IFDIR | 0o755;
        next.dir = new DirInfo();
        kids.set(c, next);
        this.dirCount++;
      } else if (!next.dir) {
        throw hostile(rawName, `parent "${c}" is not a directory of this layer`);
      }
      d = next;
    }
    this.lastParentPath = path;
    this.lastParent = d;
    return d;
  }

  /** A hardlink target: an existing non-directory, reached through directories only. */
  private lookup(rawName: string, path: string): Inode {
    let d = this.root;
    const parts = path === '' ? [] : path.split('/');
    for (let i = 0; i < parts.length; i++) {
      const next = dirOf(d).children.get(parts[i] as string);
      if (!next) break;
      if (i === parts.length - 1) {
        if (next.dir) break;
        return next;
      }
      if (!next.dir) break;
      d = next;
    }
    throw hostile(rawName, 'hardlink target is not an earlier non-directory entry of this layer');
  }

  private internXattrs(list: Array<[string, Buffer]>): number[] | null {
    if (list.length === 0) return null;
    const byName = new Map<string, Buffer>();
    for (const [name, value] of list) byName.set(name, value); // a repeated name: the last wins
    const ids: number[] = [];
    for (const [name, value] of byName) {
      if (name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.')) continue;
      const x = xattrIndex(name);
      if (!x || x.suffix.length > 255 || value.length > 0xffff) continue;
      ids.push(this.intern(x.index, x.suffix, value));
    }
    return ids.length ? ids : null;
  }

  private intern(index: number, suffix: string, value: Buffer): number {
    const key = `${index}:${suffix.length}:${suffix}${value.toString('latin1')}`; // lengths: a NUL in a name cannot make two keys one
    let id = this.xKeys.get(key);
    if (id === undefined) {
      id = this.xIndex.length;
      this.xKeys.set(key, id);
      this.xIndex.push(index);
      this.xSuffix.push(Buffer.from(suffix, 'latin1'));
      this.xValue.push(value);
    }
    return id;
  }

  private xattrWorst(n: Inode): number {
    if (!n.xattrs) return 0;
    let s = XATTR_IBODY_HEADER;
    for (const id of n.xattrs) s += xattrEntrySize((this.xSuffix[id] as Buffer).length, (this.xValue[id] as Buffer).length);
    return s;
  }

  private inlinable(n: Inode, tailLen: number): boolean {
    return EXTENDED_SIZE + this.xattrWorst(n) + tailLen <= BLOCK;
  }

  // ------------------------------------------------------------------ finish
  //
  // Each step is a method of its own with a small loop body: a one-shot pull runs these
  // loops once, cold, and V8 OSR-compiles whichever loop gets hot. One big finish() made
  // that a single 30-165 ms TurboFan job that often completed (or was aborted) only after
  // the pull was done, and Node waits for pending compile jobs before the process exits.

  async finish(): Promise<BuildStats> {
    const t0 = performance.now();
    const out = this.out;
    const prefix = this.policy.xattrPrefix;
    const opaqueId = this.intern(prefix === 'trusted.overlay.' ? 4 : 1, 'overlay.opaque', Buffer.from('y'));

    // 1. walk the tree: whiteouts become char 0/0 children, directories in BFS order, nlinks
    const dirs = this.walkTree(opaqueId);
    const leaves = this.leaves.filter((n) => n.nlink > 0);
    const all = dirs.concat(leaves);

    // 2. shared xattrs, 3. build time = the most common mtime (those inodes can be compact)
    const L = new MetaLayout(this.xSuffix, this.xValue);
    L.shareXattrs(all);
    L.pickBuildTime(all);

    // 4. directory sizes (names only), full blocks after the file data
    out.flush();
    let blk = this.layoutDirs(dirs, L, out.pos / BLOCK);

    // 5. shared xattr area, 6. meta area: positions (nids)
    const xattrBlk = L.sharedList.length ? blk : 0;
    blk += Math.ceil(L.xpos / BLOCK);
    const metaBlk = blk;
    const metaBytes = assignNids(all, L);
    if (this.root.nid !== 0) throw new Error('bug: root inode not first');
    const metaBlocks = Math.ceil(metaBytes / BLOCK);
    const totalBlocks = metaBlk + metaBlocks;
    if (totalBlocks > 0xffffffff) throw new BerthError('UNSUPPORTED', 'layer too large for an EROFS image (16 TiB)');

    // 7. write directory blocks
    await this.writeDirBlocks(dirs, L);
    // 8. shared xattrs
    if (L.sharedList.length) {
      out.skip(xattrBlk * BLOCK - out.pos);
      const area = Buffer.alloc(align(L.xpos, BLOCK));
      for (const id of L.sharedList) {
        writeXattrEntry(area, (L.sharedId[id] as number) * 4, this.xIndex[id] as number, this.xSuffix[id] as Buffer, this.xValue[id] as Buffer);
      }
      out.write(area);
    }
    // 9. meta area, in 4 MiB pieces
    out.skip(metaBlk * BLOCK - out.pos);
    await this.writeMeta(all, L, metaBlocks);
    await out.drain();
    this.tails.close();

    // 10. superblock last
    const block0 = Buffer.alloc(BLOCK);
    encodeSuperBlock({
      rootNid: this.root.nid, inodes: all.length, buildTime: L.buildTime, buildTimeNsec: L.buildNsec, blocks: totalBlocks,
      metaBlkaddr: metaBlk, xattrBlkaddr: xattrBlk,
    }).copy(block0, SUPER_OFFSET);
    await writeAll(out.fh, [block0], 0);
    await out.fh.truncate(totalBlocks * BLOCK);
    return {
      entries: this.validator.entries, inodes: all.length, imageBytes: totalBlocks * BLOCK,
      parseMs: 0, finishMs: performance.now() - t0,
    };
  }

  /** Step 1: directories in BFS order (root first), whiteouts as char 0/0, nlinks, parents. */
  private walkTree(opaqueId: number): Inode[] {
    const dirs: Inode[] = [this.root];
    dirOf(this.root).parent = this.root;
    for (let i = 0; i < dirs.length; i++) this.walkDir(dirs[i] as Inode, dirs, opaqueId);
    return dirs;
  }

  private walkDir(d: Inode, dirs: Inode[], opaqueId: number): void {
    const info = dirOf(d);
    const kids = info.children;
    if (info.whiteouts) {
      for (const w of info.whiteouts) {
        if (kids.has(w)) continue; // the layer's own entry wins over its whiteout
        const wh = new Inode();
        wh.mode = S_IFCHR;
        this.leaves.push(wh);
        kids.set(w, wh);
      }
    }
    if (info.opaque) d.xattrs = [...(d.xattrs ?? []).filter((x) => x !== opaqueId), opaqueId];
    let sub = 0;
    for (const k of kids.values()) {
      if (k.dir) {
        k.dir.parent = d;
        dirs.push(k);
        sub++;
      } else {
        k.nlink++;
      }
    }
    d.nlink = 2 + sub;
  }

  /** Step 4: each directory's sorted names, block starts, size and first block; returns the next free block. */
  private layoutDirs(dirs: Inode[], L: MetaLayout, firstBlk: number): number {
    let blk = firstBlk;
    for (const d of dirs) blk = layoutDir(d, L, blk);
    return blk;
  }

  /** Step 7: the directories' full blocks (an inline last block goes with the inode). */
  private async writeDirBlocks(dirs: Inode[], L: MetaLayout): Promise<void> {
    const out = this.out;
    const dirBlock = Buffer.alloc(BLOCK);
    for (const d of dirs) {
      const starts = dirOf(d).blockStarts as number[];
      const full = L.dirTail.has(d) ? starts.length - 1 : starts.length;
      if (full === 0) continue;
      out.skip(d.iu * BLOCK - out.pos);
      for (let b = 0; b < full; b++) {
        dirBlock.fill(0);
        this.encodeDirBlock(d, b, dirBlock, 0);
        out.write(Buffer.from(dirBlock));
        if (out.inflightBytes > MAX_INFLIGHT) await out.backpressure();
      }
    }
  }

  /** Step 9: every inode record (inode, xattrs, inline tail) at its nid, in 4 MiB pieces. */
  private async writeMeta(all: Inode[], L: MetaLayout, metaBlocks: number): Promise<void> {
    const out = this.out;
    const PIECE = 4 << 20;
    let piece = Buffer.alloc(PIECE);
    let pieceStart = 0; // meta offset of piece[0]
    for (let i = 0; i < all.length; i++) {
      const n = all[i] as Inode;
      const at = n.nid * SLOT;
      if (at + (L.recordSizes[i] as number) > pieceStart + PIECE) {
        // records never cross a block, and PIECE is whole blocks: cut at the record's block
        // (the part of that block already filled moves to the new piece)
        const cut = Math.floor(at / BLOCK) * BLOCK;
        const keep = piece.subarray(cut - pieceStart, Math.min(PIECE, at - pieceStart));
        out.write(piece.subarray(0, cut - pieceStart));
        out.flush();
        await out.backpressure(); // metadata of millions of entries must not pile up in memory
        piece = Buffer.alloc(PIECE);
        keep.copy(piece, 0);
        pieceStart = cut;
      }
      this.encodeRecord(n, i + 1, L, piece, at - pieceStart);
    }
    out.write(piece.subarray(0, metaBlocks * BLOCK - pieceStart));
  }

  /** The fields of the inode being encoded: one object for all of them, not one each. */
  private readonly fields: InodeFields = { mode: 0, nlink: 0, size: 0, iu: 0, ino: 0, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0, xattrIcount: 0, layout: 0 };

  /** One inode record: the inode (number ino), its xattr body, its inline tail. */
  private encodeRecord(n: Inode, ino: number, L: MetaLayout, piece: Buffer, at: number): void {
    const tail = L.tailLen(n);
    const xs = L.xattrSize(n);
    const f = this.fields;
    f.mode = n.mode;
    f.nlink = n.nlink;
    f.size = n.size;
    f.iu = n.iu;
    f.ino = ino;
    f.uid = n.uid;
    f.gid = n.gid;
    f.mtime = n.mtime;
    f.mtimeNsec = n.mtimeNsec;
    f.xattrIcount = xs ? (xs - XATTR_IBODY_HEADER) / 4 + 1 : 0;
    f.layout = tail > 0 ? LAYOUT_FLAT_INLINE : LAYOUT_FLAT_PLAIN;
    let o = at;
    if (L.compact(n)) {
      writeCompactInode(piece, o, f);
      o += COMPACT_SIZE;
    } else {
      writeExtendedInode(piece, o, f);
      o += EXTENDED_SIZE;
    }
    if (n.xattrs) o = this.encodeXattrBody(n.xattrs, L, piece, o);
    if (tail > 0) {
      if (n.dir) this.encodeDirBlock(n, (n.dir.blockStarts as number[]).length - 1, piece, o);
      else this.tails.copyTo(n.tail, tail, piece, o);
    }
  }

  private encodeXattrBody(ids: number[], L: MetaLayout, piece: Buffer, at: number): number {
    let o = at;
    const shared = ids.filter((id) => (L.sharedId[id] as number) >= 0);
    piece.writeUInt32LE(0, o);
    piece[o + 4] = shared.length;
    o += XATTR_IBODY_HEADER;
    for (const id of shared) {
      piece.writeUInt32LE(L.sharedId[id] as number, o);
      o += 4;
    }
    for (const id of ids) {
      if ((L.sharedId[id] as number) >= 0) continue;
      o = writeXattrEntry(piece, o, this.xIndex[id] as number, this.xSuffix[id] as Buffer, this.xValue[id] as Buffer);
    }
    return o;
  }

  /** Dirents + names of block b of directory d, into buf at off. */
  private encodeDirBlock(d: Inode, b: number, buf: Buffer, off: number): void {
    const info = dirOf(d);
    const names = info.names as string[];
    const starts = info.blockStarts as number[];
    const from = starts[b] as number;
    const to = b + 1 < starts.length ? (starts[b + 1] as number) : names.length;
    const kids = dirOf(d).children;
    let nameoff = (to - from) * DIRENT_SIZE;
    for (let i = from; i < to; i++) {
      const name = names[i] as string;
      const target = name === '.' ? d : name === '..' ? (info.parent as Inode) : (kids.get(name) as Inode);
      const de = off + (i - from) * DIRENT_SIZE;
      writeU64(buf, target.nid, de);
      put16(buf, de + 8, nameoff);
      buf[de + 10] = fileType(target.mode);
      buf[de + 11] = 0;
      // names are byte strings (latin1: one char per byte); stored byte by byte, not with
      // buf.write, whose argument handling costs more than the stores for short names, cold
      const at = off + nameoff;
      for (let j = 0; j < name.length; j++) buf[at + j] = name.charCodeAt(j);
      nameoff += name.length;
    }
  }

  close(): void {
    this.tails.close();
  }
}

/** What the metadata layout decided: shared xattrs, the build time, inline directory tails. */
class MetaLayout {
  sharedId: Int32Array = new Int32Array(0);
  readonly sharedList: number[] = [];
  /** Bytes of the shared xattr area. */
  xpos = 0;
  buildTime = 0;
  buildNsec = 0;
  /** Inline tail length of a directory whose last block lives in its inode record. */
  readonly dirTail = new Map<Inode, number>();
  /** Each inode record's size, in the order of `all` (assignNids). */
  recordSizes: Uint16Array = new Uint16Array(0);

  constructor(private readonly xSuffix: Buffer[], private readonly xValue: Buffer[]) {}

  /** (name, value) pairs carried by two or more inodes go to the shared area. */
  shareXattrs(all: Inode[]): void {
    const count = this.xSuffix.length;
    const refs = new Uint32Array(count);
    for (const n of all) if (n.xattrs) for (const id of n.xattrs) refs[id] = (refs[id] as number) + 1;
    this.sharedId = new Int32Array(count).fill(-1);
    let xpos = 0;
    for (let id = 0; id < count; id++) {
      if ((refs[id] as number) < 2) continue;
      const sz = xattrEntrySize((this.xSuffix[id] as Buffer).length, (this.xValue[id] as Buffer).length);
      if ((xpos % BLOCK) + sz > BLOCK) xpos = align(xpos, BLOCK);
      this.sharedId[id] = xpos / 4;
      this.sharedList.push(id);
      xpos += sz;
    }
    this.xpos = xpos;
  }

  /** The most common (mtime, nsec): inodes with it can be compact. */
  pickBuildTime(all: Inode[]): void {
    const counts = new Map<number, Map<number, number>>();
    let best = 0;
    for (const n of all) {
      let m = counts.get(n.mtime);
      if (!m) counts.set(n.mtime, (m = new Map()));
      const c = (m.get(n.mtimeNsec) ?? 0) + 1;
      m.set(n.mtimeNsec, c);
      if (c > best) {
        best = c;
        this.buildTime = n.mtime;
        this.buildNsec = n.mtimeNsec;
      }
    }
  }

  xattrSize(n: Inode): number {
    if (!n.xattrs) return 0;
    let s = XATTR_IBODY_HEADER;
    for (const id of n.xattrs) {
      s += (this.sharedId[id] as number) >= 0 ? 4 : xattrEntrySize((this.xSuffix[id] as Buffer).length, (this.xValue[id] as Buffer).length);
    }
    return s;
  }

  compact(n: Inode): boolean {
    return n.mtime === this.buildTime && n.mtimeNsec === this.buildNsec && n.uid <= 0xffff && n.gid <= 0xffff && n.nlink <= 0xffff && n.size <= 0xffffffff;
  }

  isize(n: Inode): number {
    return this.compact(n) ? COMPACT_SIZE : EXTENDED_SIZE;
  }

  /** Bytes of n's data kept inline after its inode and xattrs. */
  tailLen(n: Inode): number {
    return n.dir ? (this.dirTail.get(n) ?? 0) : n.tail >= 0 ? n.size % BLOCK : 0;
  }

  recordSize(n: Inode): number {
    return this.isize(n) + this.xattrSize(n) + this.tailLen(n);
  }
}

/** One directory's sorted names and block starts; its size, inline tail, first block. */
function layoutDir(d: Inode, L: MetaLayout, blk: number): number {
  const info = dirOf(d);
  const names = [...info.children.keys(), '.', '..'].sort();
  const starts = [0];
  let used = 0;
  for (let i = 0; i < names.length; i++) {
    const need = DIRENT_SIZE + (names[i] as string).length;
    if (used + need > BLOCK) {
      starts.push(i);
      used = 0;
    }
    used += need;
  }
  info.names = names;
  info.blockStarts = starts;
  d.size = (starts.length - 1) * BLOCK + used;
  if (d.size > 0xffffffff) throw new BerthError('UNSUPPORTED', 'layer has a directory too large for EROFS');
  const inline = L.isize(d) + L.xattrSize(d) + used <= BLOCK;
  const full = inline ? starts.length - 1 : starts.length;
  if (inline) L.dirTail.set(d, used);
  d.iu = full > 0 ? blk : 0;
  return blk + full;
}

/** Step 6: each inode record's place in the meta area (nid); returns the area's length. */
function assignNids(all: Inode[], L: MetaLayout): number {
  let pos = 0;
  const sizes = new Uint16Array(all.length); // a record is at most one block
  for (let i = 0; i < all.length; i++) {
    const n = all[i] as Inode;
    const rec = L.recordSize(n);
    if (rec > BLOCK) throw new BerthError('UNSUPPORTED', 'layer entry has more than 4 KiB of xattrs (not supported by this EROFS writer)');
    sizes[i] = rec;
    if ((pos % BLOCK) + rec > BLOCK) pos = align(pos, BLOCK);
    n.nid = pos / SLOT;
    pos = align(pos + rec, SLOT);
  }
  L.recordSizes = sizes;
  return pos;
}
