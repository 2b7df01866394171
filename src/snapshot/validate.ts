/**
 * @module snapshot/validate
 * Per-entry policy for an untrusted layer tar, applied to headers parsed by tar-stream
 * *before* GNU tar sees the same bytes (see extract.ts). GNU tar has its own defences
 * (it refuses `..` members and delays unsafe symlinks); this is the second, independent
 * line, and the one that turns an attack into a clear HOSTILE_LAYER error naming the entry.
 *
 * Rules, on the normalised path (leading `/` and `./` stripped, `.` and empty components
 * dropped):
 * - a `..` component anywhere is rejected (GNU tar would skip it; we refuse the layer);
 * - every parent that this layer recorded must still be a directory: no entry, whiteout
 *   or opaque marker below a symlink, a file or a device of this layer (that is the only
 *   way to write outside: the layer's directory starts empty), and no directory may be
 *   created over a symlink of this layer;
 * - a directory that already has entries, whiteouts or an opaque marker of this layer
 *   below it (explicitly or as an implied parent) may not be replaced by a non-directory:
 *   the whiteout pass would otherwise apply `d/.wh.x` through the later symlink `d`, and a
 *   hardlink could name a file that the replacement removed (CVE class of
 *   umoci's CVE-2021-29136). Real image builders never write such layers;
 * - a symlink of this layer may only be repeated identically, never replaced: GNU tar
 *   delays symlinks to absolute or `..` targets (a placeholder file until the end of the
 *   archive) and then decides by inode number whether the placeholder is still there, so
 *   what a replacement leaves behind depends on inode reuse (seen on ext4: the final entry
 *   was the symlink, or tar failed). Real image builders write each path once;
 * - no entry below a name that is itself a whiteout (`.wh.x/y`): GNU tar excludes the
 *   whole subtree, so the validator's view and the extracted tree would differ. Entries
 *   below AUFS meta names (`.wh..wh.plnk/...`) are skipped like the meta entries;
 * - a hardlink must name an earlier non-directory entry of this layer, still present;
 * - a symlink must have a target (an empty one cannot be made on Linux);
 * - devices only when policy.allowDevices (char 0/0 is always allowed: it is a whiteout);
 * - at most policy.maxEntries entries and policy.maxBytes of file data (sparse files count
 *   with their real size, since mkfs/copy would materialise them);
 * - unknown entry types (old-GNU sparse 'S', volume labels, multivolume) are UNSUPPORTED
 *   (PAX sparse, what GNU tar writes with --format=pax, is supported);
 * - only regular files may carry data (tar implementations disagree about the others).
 * Whiteout names (`.wh.NAME`, `.wh..wh..opq`) are collected for whiteout.ts; other
 * `.wh..wh.` meta entries are ignored. The validator reads xattr *names* only.
 * whiteout.ts does not trust this plan: it re-checks every parent with lstat.
 */
import { BerthError } from '../base/errors.ts';
import type { ExtractPolicy } from './types.ts';

export const WH_PREFIX = '.wh.';
export const WH_META_PREFIX = '.wh..wh.';
export const WH_OPAQUE = '.wh..wh..opq';

/**
 * True when `name` is already normal: not empty, no leading "/" or ".", no trailing "/",
 * no "//" and no "/." anywhere. Then no component is empty, "." or "..", and splitting and
 * joining would give the same string. Most member names are; this saves their split/join
 * (two arrays and a string per entry, per layer).
 */
function alreadyNormal(name: string): boolean {
  const c0 = name.charCodeAt(0);
  return name.length > 0 && c0 !== 0x2f && c0 !== 0x2e && name.charCodeAt(name.length - 1) !== 0x2f && !name.includes('//') && !name.includes('/.');
}

/** Normalises a tar member name; throws HOSTILE_LAYER on `..`. '' means the root. */
export function normalizeEntryPath(name: string): string {
  if (name.includes('\0')) throw hostile(name, 'NUL byte in name');
  if (alreadyNormal(name)) return name;
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw hostile(name, 'path contains ".."');
    parts.push(p);
  }
  return parts.join('/');
}

function hostile(name: string, why: string): BerthError {
  return new BerthError('HOSTILE_LAYER', `hostile layer: entry "${name}": ${why}`, { details: { entry: name } });
}

/** The parts of a tar-stream header the validator reads (PAX applied, pax map attached). */
export interface EntryHeader {
  name: string;
  type?: string | null;
  size?: number;
  linkname?: string | null;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string> | null;
}

type Kind = 'dir' | 'file' | 'symlink' | 'other';

export interface WhiteoutPlan {
  /** Paths (normalised) that must become overlay whiteouts (char 0/0). */
  whiteouts: string[];
  /** Directories that must become opaque. */
  opaques: string[];
}

export class LayerValidator {
  private readonly policy: ExtractPolicy;
  private readonly seen = new Map<string, Kind>();
  /** Every directory that has something of this layer below it (entries, whiteouts, markers). */
  private readonly parents = new Set<string>();
  private readonly whiteoutSet = new Set<string>();
  private readonly opaqueSet = new Set<string>();
  entries = 0;
  dataBytes = 0;

  constructor(policy: ExtractPolicy) {
    this.policy = policy;
  }

  /**
   * Validates one entry header (long names and PAX already applied). Throws on violation.
   * Returns the entry's normalised path (of GNU.sparse.name when set), or null for an entry
   * below an AUFS meta name (`.wh..wh.plnk/x`): the dir format's tar excludes it, so every
   * format must drop it (with its data).
   */
  check(h: EntryHeader): string | null {
    const rawName = h.pax?.['GNU.sparse.name'] ?? h.name;
    if (++this.entries > this.policy.maxEntries) {
      throw hostile(rawName, `more than ${this.policy.maxEntries} entries (limit)`);
    }
    const path = normalizeEntryPath(rawName);
    const realSize = Number(h.pax?.['GNU.sparse.realsize'] ?? h.pax?.['GNU.sparse.size'] ?? h.size ?? 0);
    if (!Number.isFinite(realSize) || realSize < 0) throw hostile(rawName, 'invalid size');
    this.dataBytes += realSize;
    if (this.dataBytes > this.policy.maxBytes) {
      throw hostile(rawName, `layer expands beyond ${this.policy.maxBytes} bytes (limit)`);
    }
    const type = h.type ?? null;
    if (type === null) {
      // e.g. old-GNU sparse ('S', whose extension blocks tar-stream would misread as data),
      // volume labels, multivolume continuations: refuse rather than risk a parser mismatch
      throw new BerthError('UNSUPPORTED', `layer entry "${rawName}": unsupported tar entry type (old GNU sparse, volume, multivolume?)`, {
        details: { entry: rawName },
      });
    }
    if ((h.size ?? 0) !== 0 && type !== 'file' && type !== 'contiguous-file') {
      // tar implementations disagree on whether such data exists: refuse the ambiguity
      throw hostile(rawName, `${type ?? 'unknown'} entry with data`);
    }
    if (this.belowMeta(rawName, path)) return null; // excluded by tar, like the meta entry itself
    this.checkParents(rawName, path);
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (base.startsWith(WH_PREFIX)) {
      this.whiteout(rawName, path, base);
      return path;
    }
    if (path === '' && type !== 'directory') throw hostile(rawName, 'non-directory entry for the root');
    switch (type) {
      case 'directory':
        if (this.seen.get(path) === 'symlink') throw hostile(rawName, 'directory over a symlink of this layer');
        this.record(rawName, path, 'dir');
        return path;
      case 'file':
      case 'contiguous-file':
        this.record(rawName, path, 'file');
        return path;
      case 'symlink':
        // Linux cannot make one (ENOENT), GNU tar fails on it, EROFS would hold a 0-byte link
        if (!h.linkname) throw hostile(rawName, 'symlink without target');
        this.record(rawName, path, 'symlink', h.linkname);
        return path;
      case 'link':
        this.checkHardlink(rawName, h.linkname ?? '');
        this.record(rawName, path, 'file');
        return path;
      case 'character-device':
      case 'block-device': {
        const whiteoutDev = type === 'character-device' && !h.devmajor && !h.devminor;
        if (!whiteoutDev && !this.policy.allowDevices) throw hostile(rawName, `${type} not allowed here (rootless)`);
        this.record(rawName, path, 'other');
        return path;
      }
      case 'fifo':
        this.record(rawName, path, 'other');
        return path;
      default:
        throw new BerthError('UNSUPPORTED', `layer entry "${rawName}": unsupported tar entry type`, {
          details: { entry: rawName },
        });
    }
  }

  plan(): WhiteoutPlan {
    // A whiteout only hides lower layers: a same-named entry of this layer wins (OCI spec).
    const whiteouts = [...this.whiteoutSet].filter((p) => !this.seen.has(p));
    return { whiteouts, opaques: [...this.opaqueSet] };
  }

  /**
   * True for entries below an AUFS meta name (`.wh..wh.plnk/x`), which tar's `.wh.*`
   * exclusion skips; throws for entries below an ordinary whiteout name (`.wh.x/y`).
   */
  private belowMeta(rawName: string, path: string): boolean {
    if (!path.includes(WH_PREFIX)) return false; // the common case, without splitting
    const parts = path.split('/');
    for (let i = 0; i < parts.length - 1; i++) {
      const p = parts[i] as string;
      if (p.startsWith(WH_META_PREFIX)) return true;
      if (p.startsWith(WH_PREFIX)) throw hostile(rawName, `entry below the whiteout "${parts.slice(0, i + 1).join('/')}"`);
    }
    return false;
  }

  /** Every parent this layer recorded must (still) be a directory. */
  private checkParents(rawName: string, path: string): void {
    let i = path.indexOf('/');
    while (i !== -1) {
      const parent = path.slice(0, i);
      const kind = this.seen.get(parent);
      if (kind === 'symlink') throw hostile(rawName, `parent "${parent}" is a symlink of this layer`);
      if (kind !== undefined && kind !== 'dir') throw hostile(rawName, `parent "${parent}" is not a directory in this layer`);
      i = path.indexOf('/', i + 1);
    }
  }

  /** Notes every ancestor of path as a directory with content of this layer. */
  private addParents(path: string): void {
    let i = path.lastIndexOf('/');
    while (i !== -1) {
      const parent = path.slice(0, i);
      if (this.parents.has(parent)) return; // its own ancestors are in already
      this.parents.add(parent);
      i = parent.lastIndexOf('/');
    }
    if (path !== '') this.parents.add('');
  }

  private checkHardlink(rawName: string, linkname: string): void {
    if (linkname === '') throw hostile(rawName, 'hardlink without target');
    let target: string;
    try {
      target = normalizeEntryPath(linkname);
    } catch {
      throw hostile(rawName, `hardlink target "${linkname}" contains ".."`);
    }
    const kind = this.seen.get(target);
    if (kind === undefined) throw hostile(rawName, `hardlink target "${linkname}" is not an earlier entry of this layer`);
    if (kind === 'dir') throw hostile(rawName, `hardlink target "${linkname}" is a directory`);
    this.checkParents(rawName, target);
  }

  private whiteout(rawName: string, path: string, base: string): void {
    const dir = path.slice(0, Math.max(0, path.length - base.length - 1));
    if (base === WH_OPAQUE) {
      this.addParents(path);
      this.opaqueSet.add(dir);
      return;
    }
    if (base.startsWith(WH_META_PREFIX)) return; // other AUFS meta entries: ignored
    const name = base.slice(WH_PREFIX.length);
    if (name === '' || name === '.' || name === '..') throw hostile(rawName, 'invalid whiteout name');
    this.addParents(path);
    this.whiteoutSet.add(dir === '' ? name : `${dir}/${name}`);
  }

  private readonly symlinkTargets = new Map<string, string>();

  private record(rawName: string, path: string, kind: Kind, linkname?: string): void {
    const prevTarget = this.symlinkTargets.get(path);
    if (prevTarget !== undefined && !(kind === 'symlink' && linkname === prevTarget)) {
      throw hostile(rawName, `replaces the symlink "${path}" of this layer (tar delays symlinks: the result would be ambiguous)`);
    }
    if (kind === 'symlink') this.symlinkTargets.set(path, linkname ?? '');
    if (kind !== 'dir' && (this.parents.has(path) || this.opaqueSet.has(path))) {
      // d/, d/.wh.x, then d -> /host: the whiteout would be applied through the symlink
      throw hostile(rawName, `replaces directory "${path}" that has entries, whiteouts or an opaque marker of this layer below it`);
    }
    this.addParents(path);
    this.seen.set(path, kind);
  }
}
