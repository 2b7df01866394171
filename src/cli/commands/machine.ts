/**
 * @module cli/commands/machine
 * Lifecycle and view commands on existing machines: start, stop, restart, kill, rm,
 * rename, enable, disable, ls/ps, inspect, status, logs, exec, shell. Thin: parsing of
 * numbers and output formatting here, the work in src/machine.
 */
import type { GlobalOptions } from '../program.ts';
import { storeRoot } from '../context.ts';
import { formatTable } from '../table.ts';
import { BerthError, isBerthError } from '../../base/errors.ts';
import { SnapshotStore } from '../../snapshot/index.ts';
import {
  disableMachine, enableMachine, execInMachine, formatStatus, inspectMachine, machineExists, machineStatus, killMachine, removeMachine, renameMachine,
  restartMachine, startMachine, stopMachine, streamLogs, type MachineContext,
} from '../../machine/index.ts';
import { machinePaths } from '../../runtime/nspawn/index.ts';

async function context(g: GlobalOptions): Promise<MachineContext> {
  // rm and rename need the store's directories, not the opened content store.
  const root = storeRoot(g);
  return { berthRoot: root, snapshots: new SnapshotStore(`${root}/snapshots`) };
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

export async function startCommand(names: string[], _f: unknown): Promise<void> {
  await each(names, (n) => startMachine(n));
}

export async function stopCommand(names: string[], f: { time?: string }): Promise<void> {
  const t = seconds(f.time, '--time');
  await each(names, (n) => stopMachine(n, { timeoutSec: t }));
}

export async function restartCommand(names: string[], f: { time?: string }): Promise<void> {
  const t = seconds(f.time, '--time');
  await each(names, (n) => restartMachine(n, { timeoutSec: t }));
}

export async function killCommand(names: string[], f: { signal?: string }): Promise<void> {
  const sig = f.signal ?? 'SIGKILL';
  await each(names, (n) => killMachine(n, /^\d+$/.test(sig) || sig.startsWith('SIG') ? sig : `SIG${sig}`));
}

export async function rmCommand(names: string[], f: { force?: boolean }, g: GlobalOptions): Promise<void> {
  const ctx = await context(g);
  await each(names, (n) => removeMachine(ctx, n, { force: f.force }));
}

export async function renameCommand(from: string, to: string, _f: unknown, g: GlobalOptions): Promise<void> {
  await renameMachine(await context(g), from, to);
}

export async function enableCommand(names: string[]): Promise<void> {
  await each(names, (n) => enableMachine(n));
}

export async function disableCommand(names: string[]): Promise<void> {
  await each(names, (n) => disableMachine(n));
}

export async function inspectCommand(names: string[]): Promise<void> {
  const out = [];
  for (const n of names) {
    machinePaths(n);
    out.push(await inspectMachine(n));
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

export async function statusCommand(name: string, f: { lines?: string; json?: boolean }): Promise<void> {
  const lines = f.lines === undefined ? undefined : Number(f.lines);
  if (lines !== undefined && !Number.isSafeInteger(lines)) throw new BerthError('INVALID_ARGUMENT', `-n: expected a number, got ${f.lines}`);
  if (!(await machineExists(name))) throw new BerthError('NOT_FOUND', `no such container: ${name}`, { details: { name } });
  const s = await machineStatus(name, { lines });
  process.stdout.write(f.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
}

export async function logsCommand(name: string, f: { follow?: boolean; tail?: string; since?: string }): Promise<void> {
  machinePaths(name);
  if (!(await machineExists(name))) throw new BerthError('NOT_FOUND', `no such container: ${name}`);
  const lines = f.tail === undefined || f.tail === 'all' ? undefined : Number(f.tail);
  if (lines !== undefined && !Number.isSafeInteger(lines)) throw new BerthError('INVALID_ARGUMENT', `-n: expected a number, got ${f.tail}`);
  await streamLogs(name, { follow: f.follow, lines, since: f.since });
}

export async function execCommand(name: string, argv: string[], f: { interactive?: boolean; tty?: boolean; user?: string; workdir?: string; env?: string[] }): Promise<void> {
  process.exitCode = await execInMachine(name, argv, { stdin: f.interactive, tty: f.tty, user: f.user, cwd: f.workdir, env: f.env });
}

export async function shellCommand(name: string, argv: string[]): Promise<void> {
  process.exitCode = await execInMachine(name, argv.length ? argv : ['/bin/sh'], { stdin: true, tty: process.stdin.isTTY === true });
}
