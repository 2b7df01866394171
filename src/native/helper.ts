/**
 * @module native/helper
 * Where berth-helper is and how it is run. The helper is installed *with berth*
 * (`npm run build` writes dist/libexec/berth-helper next to the bundle) and machines'
 * drop-ins name that absolute path; it is never copied into a store, which may be
 * writable by someone else (issue 7, "Store and mounts"). Before a root berth runs it, it
 * checks that the file and its directory are root-owned and not group/world-writable.
 */
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BerthError } from '../base/errors.ts';
import { run, type ExecOptions, type ExecResult } from '../base/exec.ts';
import { helperError } from './errors.ts';

let cached: string | undefined;

function candidates(): string[] {
  return [
    // the bundle: dist/*.js, helper in dist/libexec/
    fileURLToPath(new URL('./libexec/berth-helper', import.meta.url)),
    // running from source (tests): src/native/ -> dist/libexec/
    fileURLToPath(new URL('../../dist/libexec/berth-helper', import.meta.url)),
  ];
}

/** Refuses a helper that someone other than root could have replaced. Pure on stat data. */
export function checkHelperOwnership(path: string, file: { uid: number; mode: number }, dir: { uid: number; mode: number }, euid: number): void {
  if (euid !== 0) return;
  for (const [what, st] of [[path, file], [dirname(path), dir]] as const) {
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
      throw new BerthError('PERMISSION_DENIED', `${what} must be owned by root and not group- or world-writable (berth runs it as root)`, { details: { path: what } });
    }
  }
}

/** Absolute path of this installation's berth-helper (checked once per process). */
export function helperPath(): string {
  if (cached) return cached;
  for (const c of candidates()) {
    const st = statSync(c, { throwIfNoEntry: false });
    if (!st?.isFile()) continue;
    const dir = statSync(dirname(c));
    checkHelperOwnership(c, st, dir, process.geteuid?.() ?? 0);
    cached = c;
    return c;
  }
  throw new BerthError('FAILED_PRECONDITION', 'berth-helper is not built: run `npm run build` (needs gcc and libc6-dev)', { details: { looked: candidates() } });
}

/** Default deadline of one helper call: mounts and reads are milliseconds; a hang is a bug. */
const TIMEOUT_MS = 30_000;

/** Runs `berth-helper ARGS`; a failure becomes the BerthError its error line describes. */
export async function runHelper(args: readonly string[], opts: ExecOptions & { context?: string } = {}): Promise<ExecResult> {
  const argv = [helperPath(), ...args];
  const r = await run(argv, { timeoutMs: TIMEOUT_MS, ...opts, reject: false });
  if (r.timedOut) throw new BerthError('TIMEOUT', `${opts.context ?? `berth-helper ${args[0]}`}: timed out after ${r.durationMs} ms`);
  if (r.exitCode !== 0) throw helperError(opts.context ?? `berth-helper ${args[0] ?? ''}`.trim(), r.exitCode, r.stderr);
  return r;
}

export interface ExecArgs {
  leader: number;
  user?: string;
  cwd?: string;
  /** A new pseudo-terminal for the command (`exec -t`), relayed to berth's own. */
  tty?: boolean;
  /** fd of the pipe set-up errors are written to (exec's own stderr is the command's). */
  errfd?: number;
}

/** argv (after the helper path) of `berth-helper exec`. Pure. */
export function execArgs(o: ExecArgs, command: readonly string[]): string[] {
  if (!Number.isInteger(o.leader) || o.leader <= 1) throw new BerthError('INVALID_ARGUMENT', `exec: bad leader PID ${o.leader}`);
  if (command.length === 0) throw new BerthError('INVALID_ARGUMENT', 'exec: no command given');
  const a = ['exec', '--leader', String(o.leader)];
  if (o.user !== undefined && o.user !== '') a.push('--user', o.user);
  if (o.cwd !== undefined) a.push('--cwd', o.cwd);
  if (o.tty) a.push('--tty');
  if (o.errfd !== undefined) a.push('--errfd', String(o.errfd));
  return [...a, '--', ...command];
}

function checkRootPaths(paths: readonly string[]): void {
  for (const p of paths) {
    if (!p.startsWith('/') || p.split('/').includes('..') || p.includes('\0')) throw new BerthError('INVALID_ARGUMENT', `path ${JSON.stringify(p)} must be absolute, without ".."`);
  }
}

/** argv of `mkdirs`: directories inside root, made by uid:gid. Pure. */
export function mkdirsArgs(root: string, owner: { uid: number; gid: number }, paths: readonly string[]): string[] {
  checkRootPaths(paths);
  return ['mkdirs', root, String(owner.uid), String(owner.gid), ...paths];
}

/** The same directories as options of `mount` (made inside the root it mounts). Pure. */
export function mountMkdirOptions(owner: { uid: number; gid: number }, paths: readonly string[]): string[] {
  checkRootPaths(paths);
  return ['--owner', `${owner.uid}:${owner.gid}`, ...paths.flatMap((d) => ['--mkdir', d])];
}

/** Makes directories inside root, resolving every component inside it. */
export async function mkdirsInRoot(root: string, owner: { uid: number; gid: number }, paths: readonly string[]): Promise<void> {
  if (paths.length === 0) return;
  await runHelper(mkdirsArgs(root, owner, paths), { context: 'preparing the container root' });
}

/** Reads a regular file inside root (at most maxBytes); FIFOs, devices and bigger files fail. */
export async function readInRoot(root: string, path: string, maxBytes: number): Promise<string> {
  const r = await runHelper(['read', root, path, String(maxBytes)], { context: `reading ${path} in the container` });
  return r.stdout;
}
