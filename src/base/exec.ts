/**
 * @module base/exec
 * Every subprocess berth starts (tar, mkfs.erofs, mount, systemd-nspawn, systemctl, nft, ...)
 * goes through here, so failures look the same everywhere: an ExecError carrying the
 * command, its escaped form, exit code, signal, stderr and duration (execa's result shape).
 */
import { spawn, type SpawnOptions, type ChildProcess } from 'node:child_process';
import { BerthError, type ErrorCode } from './errors.ts';

export interface ExecResult {
  command: string[];
  escapedCommand: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

export interface ExecOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /**
   * Kill with SIGTERM after this many ms, SIGKILL 5 s later. Default DEFAULT_TIMEOUT_MS
   * (no subprocess may hang berth forever); 0 means none (interactive, inherited stdio).
   */
  timeoutMs?: number;
  /** Do not throw on a non-zero exit. */
  reject?: boolean;
  /** Error code for a failure (default INTERNAL). */
  errorCode?: ErrorCode;
  /** Inherit stdio instead of capturing. */
  inherit?: boolean;
  signal?: AbortSignal;
}

/** The deadline of a subprocess that names none: generous, but finite. */
export const DEFAULT_TIMEOUT_MS = 10 * 60_000;

export function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

export function escapeCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

export class ExecError extends BerthError {
  readonly result: ExecResult;
  constructor(code: ErrorCode, result: ExecResult) {
    const why = result.timedOut
      ? `timed out after ${result.durationMs} ms`
      : result.signal
        ? `killed by ${result.signal}`
        : `exited with ${result.exitCode}`;
    const err = result.stderr.trim().split('\n').slice(-3).join('; ');
    super(code, `${result.command[0]} ${why}${err ? `: ${err}` : ''}`, {
      details: { command: result.escapedCommand, exitCode: result.exitCode, signal: result.signal },
    });
    this.result = result;
  }
}

/** Runs argv to completion and collects its output. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  // process.hrtime, not performance.now(): the global `performance` loads perf_hooks and
  // ten internal modules on first use (~2 ms of every command that runs a subprocess).
  const start = process.hrtime.bigint();
  const [file, ...args] = argv;
  if (file === undefined) throw new BerthError('INTERNAL', 'run: empty command');
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = {
      cwd: opts.cwd,
      env: opts.env,
      stdio: opts.inherit ? 'inherit' : ['pipe', 'pipe', 'pipe'],
      signal: opts.signal,
    };
    let child: ChildProcess;
    try {
      child = spawn(file, args, spawnOpts);
    } catch (e) {
      reject(new BerthError('INTERNAL', `cannot start ${file}: ${(e as Error).message}`, { cause: e }));
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timeoutMs = opts.timeoutMs ?? (opts.inherit ? 0 : DEFAULT_TIMEOUT_MS);
    const timer = timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGTERM');
          killTimer = setTimeout(() => child.kill('SIGKILL'), 5000);
        }, timeoutMs)
      : undefined;
    if (child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input ?? '');
    }
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      const code: ErrorCode = e.code === 'ENOENT' ? 'FAILED_PRECONDITION' : 'INTERNAL';
      reject(new BerthError(code, e.code === 'ENOENT' ? `${file}: command not found (is it installed?)` : `${file}: ${e.message}`, { cause: e }));
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      const result: ExecResult = {
        command: [...argv],
        escapedCommand: escapeCommand(argv),
        exitCode,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        durationMs: Math.round(Number(process.hrtime.bigint() - start) / 1e6),
        timedOut,
      };
      if ((exitCode !== 0 || timedOut) && opts.reject !== false) {
        reject(new ExecError(opts.errorCode ?? 'INTERNAL', result));
      } else {
        resolve(result);
      }
    });
  });
}

/**
 * Forwards SIGINT, SIGTERM and SIGHUP that berth receives to an attached child. With `tty`
 * the child has a terminal of its own in raw mode, where ^C is a byte for it, so SIGINT is
 * not forwarded twice. Returns the function that stops forwarding.
 */
export function forwardSignals(child: ChildProcess, opts: { tty?: boolean } = {}): () => void {
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => [sig, () => {
    if (!(opts.tty && sig === 'SIGINT')) child.kill(sig);
  }] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  return () => {
    for (const [sig, h] of handlers) process.off(sig, h);
  };
}
