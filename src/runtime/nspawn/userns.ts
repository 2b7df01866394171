/**
 * @module runtime/nspawn/userns
 * UID/GID ranges for machines. nspawn's own `PrivateUsers=pick` chooses a range only when
 * the container starts, but the idmapped lowers (rootfs.ts) are mounted before that, so
 * berth picks the range itself, the way nspawn does: 65536 IDs at a 64 Ki boundary in
 * nspawn's pick window (0x00080000–0x6FFF0000), first candidate from a hash of the name,
 * skipping ranges that are taken anywhere berth can see: any .nspawn file in
 * /etc/systemd/nspawn (berth's machines and hand-made ones with a fixed range),
 * /etc/subuid and /etc/subgid (rootless users' ranges), nspawn's own picks (its lock
 * files in /run/systemd/nspawn-uid/, one per base), and the uid_map/gid_map of every
 * running process (what nspawn, machined's machines and any other runtime use now). The range is written to the .nspawn file as
 * `PrivateUsers=BASE:65536` with `PrivateUsersOwnership=off` (nothing to shift: the lowers
 * are idmapped; the upper dir holds files as their host UIDs BASE+uid), so it stays fixed
 * for the machine's lifetime (and across renames), as files in its upper dir depend on it.
 * Concurrent creates do not queue behind one lock: each claims its pick by creating
 * /run/berth/uid/BASE exclusively (link(2) fails with EEXIST for the loser, who picks the
 * next slot), then writes its .nspawn file, which carries the range from then on. Picks
 * skip every claim by its file name alone (no read per machine); a claim whose creator
 * died is stale and taken over when it is raced for, or when no other slot is left;
 * /run empties at boot, when the .nspawn
 * files alone hold every range. The /proc scan (rangesInUse) may be a few ms old: a
 * namespace that appears in between is one nspawn picked itself, which its lock files
 * also show.
 */
import { createHash } from 'node:crypto';
import { closeSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, writeFileSync } from 'node:fs';
import { ownerIsDead, processStartTime } from '../../base/lock.ts';
import { isErrno, unlinkQuietly } from '../../base/fs.ts';
import { join } from 'node:path';
import { BerthError, isBerthError } from '../../base/errors.ts';
import type { UidRange } from './rootfs.ts';
import { readSettingsFileSync } from './paths.ts';

export const RANGE_SIZE = 0x10000;
const PICK_FIRST = 0x00080000;
const PICK_LAST = 0x6fff0000;

/** Parses a PrivateUsers= value ("yes", "pick", "BASE", "BASE:SIZE"); fixed ranges only. */
export function parsePrivateUsers(v: string): UidRange | undefined {
  const m = /^\s*(\d+)(?::(\d+))?\s*$/.exec(v);
  if (!m) return undefined;
  return { base: Number(m[1]), size: m[2] === undefined ? RANGE_SIZE : Number(m[2]) };
}

function overlaps(a: UidRange, b: UidRange): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

/** Picks a free range for name, avoiding `taken`. Pure. */
export function pickRange(name: string, taken: readonly UidRange[]): UidRange {
  const slots = (PICK_LAST - PICK_FIRST) / RANGE_SIZE;
  const h = createHash('sha256').update(name).digest().readUInt32BE(0);
  for (let i = 0; i < slots; i++) {
    const cand = { base: PICK_FIRST + ((h + i) % slots) * RANGE_SIZE, size: RANGE_SIZE };
    if (!taken.some((t) => overlaps(t, cand))) return cand;
  }
  throw new BerthError('NO_SPACE', 'no free UID range left for a new machine');
}

/** Ranges listed in a subuid/subgid file ("name:start:count" lines). */
export function parseSubIdFile(text: string): UidRange[] {
  const out: UidRange[] = [];
  for (const line of text.split('\n')) {
    const [, start, count] = line.trim().split(':');
    if (start && count && /^\d+$/.test(start) && /^\d+$/.test(count)) out.push({ base: Number(start), size: Number(count) });
  }
  return out;
}

/** Outside ranges of a uid_map/gid_map ("inside outside count" lines); identity maps skipped. */
export function parseIdMap(text: string): UidRange[] {
  const out: UidRange[] = [];
  for (const line of text.split('\n')) {
    // At most 340 lines of three decimal fields each (the kernel's format, padded with spaces).
    const f = line.split(' ').filter((x) => x !== '');
    if (f.length !== 3 || !f.every(isDecimal)) continue;
    const [inside, outside, count] = f.map(Number) as [number, number, number];
    if (inside === outside && inside === 0 && count >= 0xfffffffe) continue; // the initial namespace
    out.push({ base: outside, size: count });
  }
  return out;
}

function isDecimal(s: string): boolean {
  if (s.length === 0 || s.length > 10) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Ranges claimed by .nspawn files (except `exceptFile`), /etc/subuid and /etc/subgid. */
export async function takenRanges(nspawnDir: string, exceptFile?: string): Promise<UidRange[]> {
  const out: UidRange[] = [];
  const files = listDir(nspawnDir).filter((f) => f.endsWith('.nspawn') && join(nspawnDir, f) !== exceptFile);
  // Synchronous reads: one create reads every .nspawn file (200 machines: 200 small files),
  // ~10 us each this way against ~4 thread-pool round trips each through fs/promises.
  for (const f of files) {
    // Removed meanwhile, unreadable, or not a regular file of settings size: no range to learn.
    const text = readSettingsFileSync(join(nspawnDir, f));
    if (text === undefined) continue;
    for (const m of text.matchAll(/^\s*PrivateUsers\s*=\s*(.*)$/gm)) {
      const r = parsePrivateUsers(m[1] ?? '');
      if (r) out.push(r);
    }
  }
  for (const f of ['/etc/subuid', '/etc/subgid']) out.push(...parseSubIdFile(readText(f) ?? ''));
  return out;
}

/**
 * Ranges in use right now: nspawn's lock files for the bases it picked, and the maps of
 * every process in a user namespace (deduplicated; a few ms for a few hundred processes).
 */
export async function rangesInUse(procDir = '/proc', nspawnLockDir = '/run/systemd/nspawn-uid'): Promise<UidRange[]> {
  const seen = new Set<string>();
  const out: UidRange[] = [];
  const add = (r: UidRange): void => {
    const k = `${r.base}:${r.size}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push(r);
    }
  };
  for (const f of listDir(nspawnLockDir)) {
    if (/^\d+$/.test(f)) add({ base: Number(f), size: RANGE_SIZE });
  }
  // One readlink per process (its user namespace), and the maps read once per namespace
  // other than ours: 100 running machines are ~300 processes but ~100 namespaces, and a
  // process in the initial namespace has nothing to say. Synchronous: a few hundred tiny
  // procfs calls cost a few us each this way, several times less than through the pool.
  let pids: string[] = [];
  try {
    pids = readdirSync(procDir).filter((p) => /^\d+$/.test(p));
  } catch {
    // no /proc: nothing to learn from it
  }
  let own: string | undefined;
  try {
    own = readlinkSync(join(procDir, 'self', 'ns', 'user'));
  } catch {
    own = undefined; // no ns links (old kernel, fake /proc): read every process's maps
  }
  const namespaces = new Set<string>();
  // Plain string paths and one shared buffer: with 600 processes in 200 namespaces this
  // loop runs in every create of a storm, and path.join plus readFileSync's stat and
  // second read were a third of its cost (14 -> 10 ms for 370 processes in 121 namespaces;
  // the rest is the kernel: ~9 us per ns/user readlink, ~12 us per map read).
  const buf = Buffer.allocUnsafe(16384);
  for (const p of pids) {
    const dir = `${procDir}/${p}/`;
    if (own !== undefined) {
      let ns: string;
      try {
        ns = readlinkSync(`${dir}ns/user`);
      } catch {
        continue; // exited meanwhile (or a kernel thread)
      }
      if (ns === own || namespaces.has(ns)) continue;
      namespaces.add(ns);
    }
    for (const m of ['uid_map', 'gid_map']) {
      const text = readSmall(`${dir}${m}`, buf);
      if (text === undefined) continue; // exited meanwhile
      for (const r of parseIdMap(text)) add(r);
    }
  }
  return out;
}

/** A procfs file of at most buf.length bytes (an id map has at most 340 lines of ~30). */
function readSmall(path: string, buf: Buffer): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    let n = 0;
    for (let r; n < buf.length && (r = readSync(fd, buf, n, buf.length - n, null)) > 0;) n += r;
    return buf.toString('latin1', 0, n);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Where in-flight range claims live (per boot). */
export function rangeClaimDir(): string {
  return `${process.env.BERTH_RUN_DIR ?? '/run/berth'}/uid`;
}

/** Bases claimed by creators that are still alive (claims of dead ones are ignored). */
export async function claimedRanges(dir = rangeClaimDir()): Promise<UidRange[]> {
  const out: UidRange[] = [];
  for (const f of listDir(dir)) {
    if (!/^\d+$/.test(f)) continue;
    if (claimIsStale(join(dir, f))) continue;
    out.push({ base: Number(f), size: RANGE_SIZE });
  }
  return out;
}

// The claim files' operations are synchronous: small local files, where each fs/promises
// call was a thread-pool round trip, and in a storm of 100 creates those wake threads in
// every process (as in base/lock).
function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function claimIsStale(path: string): boolean {
  const text = readText(path);
  if (text === undefined) return true;
  try {
    const o = JSON.parse(text) as { pid?: unknown; start?: unknown };
    return typeof o.pid === 'number' && ownerIsDead({ pid: o.pid, start: typeof o.start === 'string' ? o.start : null });
  } catch {
    return false; // being written (the content appears with the link): not stale
  }
}

/**
 * Claims range for machine `name`: true when this process now owns it, false when another
 * live creator does. A stale claim (its creator died) is taken over.
 */
export async function claimRange(r: UidRange, name: string, dir = rangeClaimDir()): Promise<boolean> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, String(r.base));
  const tmp = join(dir, `.${r.base}.${process.pid}.${Math.random().toString(16).slice(2)}`);
  writeFileSync(tmp, JSON.stringify({ name, pid: process.pid, start: processStartTime('self') }));
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        linkSync(tmp, path);
        return true;
      } catch (e) {
        if (!isErrno(e, 'EEXIST')) throw e;
      }
      if (!claimIsStale(path)) return false;
      unlinkQuietly(path);
    }
    return false;
  } finally {
    unlinkQuietly(tmp);
  }
}

/** Drops the claim on base (after the create failed, or when the machine is removed). */
export async function releaseRange(base: number, dir = rangeClaimDir()): Promise<void> {
  unlinkQuietly(join(dir, String(base)));
}

/**
 * Picks a range for name that nothing else uses or claims, and claims it. `taken` are the
 * ranges already known to be in use (.nspawn files, subuid/subgid, /proc, nspawn's picks).
 * Every claim file's name is avoided without reading it: a claim stays while its machine
 * exists, so with 200 machines most claims are of creators long gone whose range the
 * .nspawn file holds, and reading each to tell live from dead cost ~0.2 ms per machine
 * on every create. Only when no slot is left that way are claims of dead creators read
 * and taken over (a create killed before its .nspawn file existed leaves one behind).
 */
export async function pickAndClaimRange(name: string, taken: readonly UidRange[], dir = rangeClaimDir()): Promise<UidRange> {
  const names = listDir(dir).filter((f) => /^\d+$/.test(f));
  const avoid = [...taken, ...names.map((f) => ({ base: Number(f), size: RANGE_SIZE }))];
  for (const readClaims of [false, true]) {
    const tried = readClaims ? [...taken, ...(await claimedRanges(dir))] : avoid;
    for (let i = 0; i < 1000; i++) {
      let r: UidRange;
      try {
        r = pickRange(name, tried);
      } catch (e) {
        if (!readClaims && isBerthError(e, 'NO_SPACE')) break;
        throw e;
      }
      if (await claimRange(r, name, dir)) return r;
      tried.push(r);
    }
  }
  throw new BerthError('NO_SPACE', 'no free UID range could be claimed for a new machine');
}
