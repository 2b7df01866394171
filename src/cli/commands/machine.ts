/**
 * @module cli/commands/machine
 * Lifecycle and view commands on existing containers: start, stop, restart, kill, rm,
 * rename, enable, disable, inspect, status, logs, exec, shell. Thin: parsing of numbers
 * and output formatting here, the work in the manager (src/manager) and the runtime it
 * picked for the caller. `--user NAME` (root) opens a read-only view of that user's.
 */
import type { GlobalOptions } from '../program.ts';
import { BerthError, isBerthError } from '../../base/errors.ts';
import { openManager } from '../manager.ts';

interface UserFlag {
  user?: string;
}

function seconds(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new BerthError('INVALID_ARGUMENT', `${flag}: expected whole seconds, got ${v}`);
  return Number(v);
}

/** Runs fn for each name; reports failures per name, fails at the end (Docker style). */
async function each(names: string[], fn: (n: string) => Promise<void>, echo = true): Promise<void> {
  let last: unknown;
  for (const n of names) {
    try {
      await fn(n);
      if (echo) process.stdout.write(`${n}\n`);
    } catch (e) {
      if (names.length === 1) throw e;
      process.stderr.write(`berth: ${n}: ${(e as Error).message}\n`);
      last = e;
    }
  }
  if (last) throw isBerthError(last) ? new BerthError(last.code, 'some containers failed') : last;
}

export async function startCommand(names: string[], f: UserFlag, g: GlobalOptions): Promise<void> {
  const m = await openManager(g, { asUser: f.user });
  await each(names, (n) => m.start(n));
}

export async function stopCommand(names: string[], f: { time?: string } & UserFlag, g: GlobalOptions): Promise<void> {
  const t = seconds(f.time, '--time');
  const m = await openManager(g, { asUser: f.user });
  await each(names, (n) => m.stop(n, { timeoutSec: t }));
}

export async function restartCommand(names: string[], f: { time?: string } & UserFlag, g: GlobalOptions): Promise<void> {
  const t = seconds(f.time, '--time');
  const m = await openManager(g, { asUser: f.user });
  await each(names, (n) => m.restart(n, { timeoutSec: t }));
}

export async function killCommand(names: string[], f: { signal?: string } & UserFlag, g: GlobalOptions): Promise<void> {
  const sig = f.signal ?? 'SIGKILL';
  const m = await openManager(g, { asUser: f.user });
  await each(names, (n) => m.kill(n, /^\d+$/.test(sig) || sig.startsWith('SIG') ? sig : `SIG${sig}`));
}

export async function rmCommand(names: string[], f: { force?: boolean } & UserFlag, g: GlobalOptions): Promise<void> {
  const m = await openManager(g, { asUser: f.user });
  await each(names, (n) => m.remove(n, { force: f.force }));
}

export async function renameCommand(from: string, to: string, _f: unknown, g: GlobalOptions): Promise<void> {
  await (await openManager(g)).rename(from, to);
}

export async function enableCommand(names: string[], f: UserFlag, g: GlobalOptions): Promise<void> {
  const m = await openManager(g, { asUser: f.user });
  await each(names, async (n) => {
    const r = await m.enable(n);
    for (const w of r.warnings) process.stderr.write(`berth: ${n}: ${w}\n`);
  });
}

export async function disableCommand(names: string[], f: UserFlag, g: GlobalOptions): Promise<void> {
  const m = await openManager(g, { asUser: f.user });
  await each(names, (n) => m.disable(n));
}

export async function inspectCommand(names: string[], f: UserFlag, g: GlobalOptions): Promise<void> {
  const m = await openManager(g, { asUser: f.user });
  const out = [];
  for (const n of names) out.push(await m.inspect(n));
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

export async function statusCommand(name: string, f: { lines?: string; json?: boolean } & UserFlag, g: GlobalOptions): Promise<void> {
  const lines = f.lines === undefined ? undefined : Number(f.lines);
  if (lines !== undefined && !Number.isSafeInteger(lines)) throw new BerthError('INVALID_ARGUMENT', `-n: expected a number, got ${f.lines}`);
  const m = await openManager(g, { asUser: f.user });
  const s = await m.status(name, { lines });
  process.stdout.write(f.json ? `${JSON.stringify(s.data, null, 2)}\n` : s.text);
}

export async function logsCommand(name: string, f: { follow?: boolean; tail?: string; since?: string } & UserFlag, g: GlobalOptions): Promise<void> {
  const lines = f.tail === undefined || f.tail === 'all' ? undefined : Number(f.tail);
  if (lines !== undefined && !Number.isSafeInteger(lines)) throw new BerthError('INVALID_ARGUMENT', `-n: expected a number, got ${f.tail}`);
  const m = await openManager(g, { asUser: f.user });
  for await (const line of m.logs(name, { follow: f.follow, lines, since: f.since })) process.stdout.write(`${line}\n`);
}

export async function execCommand(name: string, argv: string[], f: { interactive?: boolean; tty?: boolean; user?: string; workdir?: string; env?: string[] }, g: GlobalOptions): Promise<void> {
  const m = await openManager(g);
  process.exitCode = await m.exec(name, argv, { stdin: f.interactive, tty: f.tty, user: f.user, cwd: f.workdir, env: f.env });
}

export async function shellCommand(name: string, argv: string[], _f: unknown, g: GlobalOptions): Promise<void> {
  const m = await openManager(g);
  process.exitCode = await m.exec(name, argv.length ? argv : ['/bin/sh'], { stdin: true, tty: process.stdin.isTTY === true });
}
