/**
 * @module test/tree-compare
 * Compares two directory trees the way a container sees them: for every path (lstat, no
 * following) its type, mode incl. setuid/setgid/sticky, uid/gid, size, sha256 of regular
 * file content, symlink target, device numbers, xattrs (names and exact bytes, read with
 * `getfattr -d -m - -e hex` from the attr package) and, for regular files, mtime (whole
 * seconds: tar headers carry no more unless PAX). Optionally hardlink groups.
 * Overlay whiteouts (char 0/0) and `*.overlay.*` xattrs of the compared trees are
 * reported like anything else: a merged overlay mount shows neither.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../src/base/exec.ts';

export interface NodeInfo {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: string;
  mtime?: number;
  xattrs: Record<string, string>;
  ino: number;
  nlink: number;
}

export interface CompareOptions {
  /** Compare mtimes of regular files (default true). */
  mtimes?: boolean;
  /** Compare hardlink groups (default false). */
  hardlinks?: boolean;
  /** Paths (relative, no leading /) to leave out, with everything below them. */
  ignore?: string[];
  /** xattr names to ignore (e.g. security.selinux). */
  ignoreXattrs?: string[];
}

function typeOf(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isFIFO(): boolean; isSocket(): boolean }): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

async function hashFile(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(p)) h.update(c as Buffer);
  return h.digest('hex');
}

/** All xattrs under root, by relative path: one getfattr run for the whole tree. */
export async function readXattrs(root: string): Promise<Map<string, Record<string, string>>> {
  const r = await run(['getfattr', '-R', '-P', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { reject: false, env: { ...process.env, LC_ALL: 'C' } });
  const out = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | undefined;
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      // getfattr escapes odd bytes in names as \ooo
      const abs = line.slice(8).replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
      const rel = Buffer.from(abs, 'latin1').toString('utf8').slice(root.length).replace(/^\/+/, '');
      cur = {};
      out.set(rel, cur);
    } else if (cur && line.includes('=')) {
      const i = line.indexOf('=');
      cur[line.slice(0, i)] = line.slice(i + 1);
    }
  }
  return out;
}

/** Walks root and describes every entry (root itself is ''). */
export async function scanTree(root: string, opts: CompareOptions = {}): Promise<Map<string, NodeInfo>> {
  const xattrs = await readXattrs(root);
  const ignore = new Set(opts.ignore ?? []);
  const skipX = new Set(opts.ignoreXattrs ?? []);
  const out = new Map<string, NodeInfo>();
  const walk = async (rel: string): Promise<void> => {
    if (ignore.has(rel)) return;
    const abs = rel === '' ? root : join(root, rel);
    const st = await lstat(abs);
    const type = typeOf(st);
    const x: Record<string, string> = {};
    for (const [k, v] of Object.entries(xattrs.get(rel) ?? {})) if (!skipX.has(k)) x[k] = v;
    const info: NodeInfo = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, xattrs: x, ino: st.ino, nlink: st.nlink };
    if (type === 'file') {
      info.size = st.size;
      info.sha256 = await hashFile(abs);
      info.mtime = Math.floor(st.mtimeMs / 1000);
    } else if (type === 'symlink') {
      info.target = await readlink(abs);
    } else if (type === 'char' || type === 'block') {
      info.rdev = `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`;
    }
    out.set(rel, info);
    if (type === 'dir') {
      for (const n of (await readdir(abs)).sort()) await walk(rel === '' ? n : `${rel}/${n}`);
    }
  };
  await walk('');
  return out;
}

/** Human-readable differences between trees a and b (empty when equal). */
export async function compareTrees(a: string, b: string, opts: CompareOptions = {}): Promise<string[]> {
  const [ta, tb] = await Promise.all([scanTree(a, opts), scanTree(b, opts)]);
  const diffs: string[] = [];
  const show = (p: string): string => `/${p}`;
  for (const [p, x] of ta) {
    const y = tb.get(p);
    if (!y) {
      diffs.push(`only in A: ${show(p)} (${x.type})`);
      continue;
    }
    const fields: Array<keyof NodeInfo> = ['type', 'mode', 'uid', 'gid', 'size', 'sha256', 'target', 'rdev'];
    if (opts.mtimes !== false) fields.push('mtime');
    for (const f of fields) {
      if (x[f] !== y[f]) diffs.push(`${show(p)}: ${f} ${fmt(f, x[f])} != ${fmt(f, y[f])}`);
    }
    if (JSON.stringify(sorted(x.xattrs)) !== JSON.stringify(sorted(y.xattrs))) {
      diffs.push(`${show(p)}: xattrs ${JSON.stringify(sorted(x.xattrs))} != ${JSON.stringify(sorted(y.xattrs))}`);
    }
  }
  for (const [p, y] of tb) if (!ta.has(p)) diffs.push(`only in B: ${show(p)} (${y.type})`);
  if (opts.hardlinks) diffs.push(...compareLinkGroups(ta, tb));
  return diffs;
}

function fmt(f: keyof NodeInfo, v: unknown): string {
  return f === 'mode' && typeof v === 'number' ? `0${v.toString(8)}` : String(v);
}

function sorted(o: Record<string, string>): Array<[string, string]> {
  return Object.entries(o).sort(([k1], [k2]) => (k1 < k2 ? -1 : 1));
}

/** Hardlink groups (paths sharing an inode, files only) must be identical. */
function compareLinkGroups(ta: Map<string, NodeInfo>, tb: Map<string, NodeInfo>): string[] {
  const groups = (t: Map<string, NodeInfo>): Set<string> => {
    const byIno = new Map<number, string[]>();
    for (const [p, n] of t) if (n.type === 'file' && n.nlink > 1) byIno.set(n.ino, [...(byIno.get(n.ino) ?? []), p]);
    return new Set([...byIno.values()].filter((g) => g.length > 1).map((g) => g.sort().join(' = ')));
  };
  const ga = groups(ta);
  const gb = groups(tb);
  const d: string[] = [];
  for (const g of ga) if (!gb.has(g)) d.push(`hardlink group only in A: ${g}`);
  for (const g of gb) if (!ga.has(g)) d.push(`hardlink group only in B: ${g}`);
  return d;
}
