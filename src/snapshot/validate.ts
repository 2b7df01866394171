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
 * - no entry may have a parent that is a symlink created earlier in this layer (that is the
 *   only way to write outside: the layer's directory starts empty), and no directory may
 *   be created over such a symlink;
 * - a hardlink must name an earlier non-directory entry of this layer, still present
 *   (replacing a directory by a symlink forgets everything below it);
 * - devices only when policy.allowDevices (char 0/0 is always allowed: it is a whiteout);
 * - at most policy.maxEntries entries and policy.maxBytes of file data (sparse files count
 *   with their real size, since mkfs/copy would materialise them);
 * - unknown entry types (old-GNU sparse 'S', volume labels, multivolume) are UNSUPPORTED
 *   (PAX sparse, what GNU tar writes with --format=pax, is supported);
 * - only regular files may carry data (tar implementations disagree about the others).
 * Whiteout names (`.wh.NAME`, `.wh..wh..opq`) are collected for whiteout.ts; other
 * `.wh..wh.` meta entries are ignored. The validator reads xattr *names* only.
 */
import { BerthError } from '../base/errors.ts';
import type { ExtractPolicy } from './types.ts';

export const WH_PREFIX = '.wh.';
export const WH_META_PREFIX = '.wh..wh.';
export const WH_OPAQUE = '.wh..wh..opq';

/** Normalises a tar member name; throws HOSTILE_LAYER on `..`. '' means the root. */
export function normalizeEntryPath(name: string): string {
  if (name.includes('\0')) throw hostile(name, 'NUL byte in name');
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
  private readonly symlinks = new Set<string>();
  private readonly whiteoutSet = new Set<string>();
  private readonly opaqueSet = new Set<string>();
  entries = 0;
  dataBytes = 0;

  constructor(policy: ExtractPolicy) {
    this.policy = policy;
  }

  /** Validates one entry header (long names and PAX already applied). Throws on violation. */
  check(h: EntryHeader): void {
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
    this.checkParents(rawName, path);
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (base.startsWith(WH_PREFIX)) {
      this.whiteout(rawName, path, base);
      return;
    }
    if (path === '' && type !== 'directory') throw hostile(rawName, 'non-directory entry for the root');
    switch (type) {
      case 'directory':
        if (this.symlinks.has(path)) throw hostile(rawName, 'directory over a symlink of this layer');
        this.record(path, 'dir');
        return;
      case 'file':
      case 'contiguous-file':
        this.record(path, 'file');
        return;
      case 'symlink':
        this.record(path, 'symlink');
        return;
      case 'link':
        this.checkHardlink(rawName, h.linkname ?? '');
        this.record(path, 'file');
        return;
      case 'character-device':
      case 'block-device': {
        const whiteoutDev = type === 'character-device' && !h.devmajor && !h.devminor;
        if (!whiteoutDev && !this.policy.allowDevices) throw hostile(rawName, `${type} not allowed here (rootless)`);
        this.record(path, 'other');
        return;
      }
      case 'fifo':
        this.record(path, 'other');
        return;
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

  private checkParents(rawName: string, path: string): void {
    let i = path.indexOf('/');
    while (i !== -1) {
      const parent = path.slice(0, i);
      if (this.symlinks.has(parent)) throw hostile(rawName, `parent "${parent}" is a symlink of this layer`);
      i = path.indexOf('/', i + 1);
    }
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
      this.opaqueSet.add(dir);
      return;
    }
    if (base.startsWith(WH_META_PREFIX)) return; // other AUFS meta entries: ignored
    const name = base.slice(WH_PREFIX.length);
    if (name === '' || name === '.' || name === '..') throw hostile(rawName, 'invalid whiteout name');
    this.whiteoutSet.add(dir === '' ? name : `${dir}/${name}`);
  }

  private record(path: string, kind: Kind): void {
    const prev = this.seen.get(path);
    if (prev === 'dir' && kind !== 'dir') this.forgetBelow(path);
    if (prev === 'symlink' && kind !== 'symlink') this.symlinks.delete(path);
    if (kind === 'symlink') this.symlinks.add(path);
    this.seen.set(path, kind);
  }

  /** A directory was replaced: entries below it are gone (no hardlinks to them any more). */
  private forgetBelow(path: string): void {
    const prefix = `${path}/`;
    for (const k of this.seen.keys()) if (k.startsWith(prefix)) this.seen.delete(k);
    for (const k of this.symlinks) if (k.startsWith(prefix)) this.symlinks.delete(k);
  }
}
