/**
 * @module base/lock
 * Cross-process exclusive locks without native addons (Node has no flock).
 *
 * A lock is a file whose existence means "held". It is created atomically *with* its
 * content: the owner record {pid, start, host, token} is written to a temp file which is
 * then link()ed to the lock path (link fails with EEXIST if the lock exists), so nobody
 * ever reads a half-written owner. `start` is the holder's start time from /proc/<pid>/stat
 * (field 22), so a recycled pid is not mistaken for the holder.
 *
 * A waiter polls with backoff (20 ms doubling to 200 ms, jittered), and an inotify watch on
 * the lock's directory (fs.watch) wakes it as soon as the lock file goes away, so a
 * release is noticed at once rather than up to 200 ms later (the poll stays, for dead
 * holders and filesystems without inotify). When the holder is dead
 * (kill(pid,0) fails with ESRCH, or its start time differs) the waiter steals the lock.
 * Stealing is guarded by a second lock file `<path>.steal` so two waiters that both saw the
 * same dead holder cannot both delete it and then each other's fresh lock; under the guard
 * the stealer re-reads the lock and removes it only if it still carries the dead token.
 *
 * Locks are not reentrant: a second acquire of the same path in the same process waits.
 * Locks still held at process 'exit' are removed synchronously; a process killed by a
 * signal leaves its lock behind, which the next waiter steals. Locks on another host
 * (shared filesystems) are never considered stale.
 */
import { linkSync, mkdirSync, readFileSync, statSync, unlinkSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { basename, dirname } from 'node:path';
import { BerthError, fromSystemError } from './errors.ts';
import { isErrno, tempPathFor, unlinkQuietly } from './fs.ts';

export interface Lock {
  readonly path: string;
  /** Removes the lock if it is still ours. Idempotent. */
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** Give up with TIMEOUT after this many ms (default: wait forever). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface Owner {
  pid: number;
  start: string | null;
  host: string;
  token: string;
}

/** An unparseable lock file older than this is considered abandoned. */
const GARBAGE_GRACE_MS = 5000;
/** A steal guard older than this is abandoned (stealing takes microseconds). */
const STEAL_GUARD_MAX_AGE_MS = 10_000;

const held = new Map<string, string>(); // path -> token
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [path, token] of held) {
      try {
        if (parseOwner(readFileSync(path, 'utf8'))?.token === token) unlinkSync(path);
      } catch {
        // best effort
      }
    }
  });
}

/** Start time (clock ticks since boot) of pid, or null when /proc is unavailable. */
export function processStartTime(pid: number | 'self'): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null; // field 22 overall; fields[0] is field 3 (state)
  } catch {
    return null;
  }
}

function parseOwner(s: string): Owner | undefined {
  try {
    const o = JSON.parse(s) as Partial<Owner>;
    if (typeof o.pid === 'number' && typeof o.token === 'string') {
      return { pid: o.pid, start: o.start ?? null, host: o.host ?? '', token: o.token };
    }
  } catch {
    // fall through
  }
  return undefined;
}

/** True when the owner is certainly dead (same host, pid gone or recycled). */
export function ownerIsDead(o: { pid: number; start?: string | null; host?: string }): boolean {
  if (o.host && o.host !== hostname()) return false;
  try {
    process.kill(o.pid, 0);
  } catch (e) {
    if (isErrno(e, 'ESRCH')) return true;
    // EPERM: exists but not ours, fall through to the start-time check
  }
  if (o.start) {
    const now = processStartTime(o.pid);
    if (now !== null && now !== o.start) return true;
  }
  return false;
}

// The file operations below are synchronous: each is one small system call on a local
// file, and through fs/promises each was a thread-pool round trip. An uncontended acquire
// and release were ~12 of them (~1-2.5 ms per lock here under load, several locks per
// command); now they are a few microseconds each. Waiting for a held lock stays async.

/** Creates `path` atomically holding `content`; false if it already exists. */
function createExclusive(path: string, content: string): boolean {
  const tmp = tempPathFor(path);
  try {
    writeFileSync(tmp, content, { mode: 0o644 });
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if (isErrno(e, 'EEXIST')) return false;
    throw fromSystemError(e);
  } finally {
    unlinkQuietly(tmp); // never written, or linked: the temp name goes either way
  }
}

function readOwner(path: string): { owner: Owner | undefined; raw: string; mtimeMs: number } | undefined {
  try {
    const raw = readFileSync(path, 'utf8');
    const st = statSync(path);
    return { owner: parseOwner(raw), raw, mtimeMs: st.mtimeMs };
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw fromSystemError(e);
  }
}

/** Removes the lock at path if it still holds exactly `raw` (the dead owner's record). */
function stealIfUnchanged(path: string, raw: string, me: string): void {
  const guard = `${path}.steal`;
  if (!createExclusive(guard, me)) {
    const g = readOwner(guard);
    if (g && ((g.owner && ownerIsDead(g.owner)) || Date.now() - g.mtimeMs > STEAL_GUARD_MAX_AGE_MS)) unlinkQuietly(guard);
    return; // someone else is stealing; retry on the next poll
  }
  try {
    const cur = readOwner(path);
    if (cur && cur.raw === raw) unlinkQuietly(path);
  } finally {
    unlinkQuietly(guard);
  }
}

function sleep(ms: number, signal?: AbortSignal, wakeup?: { wake?: () => void }): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', onAbort);
      if (wakeup) wakeup.wake = undefined;
      resolve();
    };
    const t = setTimeout(done, ms);
    if (wakeup) wakeup.wake = done;
    const onAbort = (): void => {
      clearTimeout(t);
      if (wakeup) wakeup.wake = undefined;
      reject(new BerthError('CANCELLED', 'cancelled while waiting for a lock'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Watches the lock's directory; `wakeup.wake` runs when the lock file is removed or renamed. */
function watchRelease(path: string, wakeup: { wake?: () => void }): FSWatcher | undefined {
  const name = basename(path);
  try {
    const w = watch(dirname(path), { persistent: false }, (_event, file) => {
      if (file === null || file === name) wakeup.wake?.();
    });
    w.on('error', () => w.close());
    return w;
  } catch {
    return undefined; // no inotify (or out of watches): the poll alone
  }
}

/** Attempts the lock once (stealing from a dead holder); undefined when it is held. */
export async function tryAcquireLock(path: string): Promise<Lock | undefined> {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  } catch (e) {
    throw fromSystemError(e);
  }
  const owner: Owner = { pid: process.pid, start: processStartTime('self'), host: hostname(), token: randomBytes(12).toString('hex') };
  const me = JSON.stringify(owner);
  for (let attempt = 0; attempt < 2; attempt++) {
    if (createExclusive(path, me)) return makeLock(path, owner.token);
    const cur = readOwner(path);
    if (cur === undefined) continue; // released between our link and read
    const stale = cur.owner ? ownerIsDead(cur.owner) : Date.now() - cur.mtimeMs > GARBAGE_GRACE_MS;
    if (!stale) return undefined;
    stealIfUnchanged(path, cur.raw, me);
  }
  return undefined;
}

/** Waits for the lock, polling with backoff and woken by its release; TIMEOUT after timeoutMs, CANCELLED on abort. */
export async function acquireLock(path: string, opts: AcquireOptions = {}): Promise<Lock> {
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  let delay = 20;
  const wakeup: { wake?: () => void } = {};
  let watcher: FSWatcher | undefined;
  try {
    for (;;) {
      if (opts.signal?.aborted) throw new BerthError('CANCELLED', `cancelled while waiting for lock ${path}`);
      const lock = await tryAcquireLock(path);
      if (lock) return lock;
      const left = deadline - Date.now();
      if (left <= 0) {
        let cur: ReturnType<typeof readOwner>;
        try {
          cur = readOwner(path);
        } catch {
          cur = undefined;
        }
        throw new BerthError('TIMEOUT', `timed out waiting for lock ${path}${cur?.owner ? ` (held by pid ${cur.owner.pid})` : ''}`, {
          details: { path, holderPid: cur?.owner?.pid },
        });
      }
      // Contended: from now on a release wakes us (set up after the first miss, so an
      // uncontended acquire costs no watch). A release between the miss and the watch is
      // caught by the next poll.
      watcher ??= watchRelease(path, wakeup);
      await sleep(Math.min(left, delay * (0.75 + Math.random() / 2)), opts.signal, wakeup);
      delay = Math.min(200, delay * 2);
    }
  } finally {
    watcher?.close();
  }
}

/** Runs fn holding the lock at path; releases it however fn ends. */
export async function withLock<T>(path: string, fn: () => Promise<T>, opts: AcquireOptions = {}): Promise<T> {
  const lock = await acquireLock(path, opts);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

function makeLock(path: string, token: string): Lock {
  installExitHook();
  held.set(path, token);
  let released = false;
  return {
    path,
    async release(): Promise<void> {
      if (released) return;
      released = true;
      if (held.get(path) === token) held.delete(path);
      let cur: ReturnType<typeof readOwner>;
      try {
        cur = readOwner(path);
      } catch {
        cur = undefined;
      }
      if (cur?.owner?.token === token) unlinkQuietly(path);
    },
  };
}
