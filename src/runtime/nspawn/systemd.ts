/**
 * @module runtime/nspawn/systemd
 * Thin wrappers over systemctl, machinectl and journalctl, the only places berth reads
 * runtime state from: berth keeps no private copy, so `systemctl`, `machinectl` and
 * `berth` always agree. Command-line tools rather than D-Bus: no native dependency, and
 * each call is what an admin would type (errors quote the command).
 */
import { existsSync } from 'node:fs';
import { BerthError } from '../../base/errors.ts';
import { run, type ExecResult } from '../../base/exec.ts';

/** sd_booted(): systemd is PID 1 when /run/systemd/system exists. */
export function systemdIsPid1(): boolean {
  return existsSync('/run/systemd/system');
}

export function requireSystemd(what: string): void {
  if (!systemdIsPid1()) {
    throw new BerthError('FAILED_PRECONDITION', `${what} needs systemd as PID 1, and PID 1 on this host is not systemd (run it in the foreground, without -d)`);
  }
}

export function systemctl(args: string[], opts: { reject?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
  return run(['systemctl', ...args], { reject: opts.reject, timeoutMs: opts.timeoutMs, errorCode: 'FAILED_PRECONDITION' });
}

export async function daemonReload(): Promise<void> {
  await systemctl(['daemon-reload']);
}

/**
 * Makes systemd see the unit's current files with the least work: a unit that is not
 * loaded yet is loaded fresh from disk by the `show` itself (new drop-ins included), so a
 * full daemon-reload (~100+ ms, every unit re-read) is only needed when systemd says so.
 */
export async function reloadIfNeeded(unit: string): Promise<void> {
  const r = await systemctl(['show', '-p', 'NeedDaemonReload', '--value', '--', unit], { reject: false });
  if (r.exitCode !== 0 || r.stdout.trim() !== 'no') await daemonReload();
}

/** Parses `KEY=VALUE` lines (systemctl show / machinectl show). Blank lines separate units. */
export function parseShow(text: string): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  let cur: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line === '') {
      if (Object.keys(cur).length) out.push(cur);
      cur = {};
      continue;
    }
    const i = line.indexOf('=');
    if (i > 0) cur[line.slice(0, i)] = line.slice(i + 1);
  }
  if (Object.keys(cur).length) out.push(cur);
  return out;
}

export async function showUnit(unit: string, props: readonly string[]): Promise<Record<string, string>> {
  const r = await systemctl(['show', ...props.flatMap((p) => ['-p', p]), '--', unit]);
  return parseShow(r.stdout)[0] ?? {};
}

/** machinectl show NAME; undefined when the machine is not registered. */
export async function showMachine(name: string): Promise<Record<string, string> | undefined> {
  const r = await run(['machinectl', 'show', '--', name], { reject: false });
  if (r.exitCode !== 0) return undefined;
  return parseShow(r.stdout)[0];
}

export interface MachineListEntry {
  machine: string;
  class: string;
  service: string;
}

/** machinectl list (registered machines). Empty when machined is unavailable. */
export async function listMachines(): Promise<MachineListEntry[]> {
  const r = await run(['machinectl', 'list', '--no-legend', '--no-pager'], { reject: false });
  if (r.exitCode !== 0) return [];
  return r.stdout.split('\n').filter(Boolean).map((l) => {
    const [machine = '', cls = '', service = ''] = l.trim().split(/\s+/);
    return { machine, class: cls, service };
  });
}

/** Units matching a glob, loaded or not (unit files included). */
export async function listNspawnUnits(): Promise<Record<string, string>[]> {
  const r = await systemctl(['show', '--all', '-p', 'Id', '-p', 'ActiveState', '-p', 'SubState', '-p', 'MainPID', '-p', 'UnitFileState', '-p', 'ActiveEnterTimestamp', '-p', 'InactiveEnterTimestamp', '-p', 'ExecMainStatus', '-p', 'Result', '--', 'systemd-nspawn@*.service'], { reject: false });
  return parseShow(r.stdout);
}

/** Waits until the unit is no longer active/deactivating; false on timeout. */
export async function waitInactive(unit: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 200)) {
    const s = await showUnit(unit, ['ActiveState']);
    if (s.ActiveState !== 'active' && s.ActiveState !== 'deactivating' && s.ActiveState !== 'activating' && s.ActiveState !== 'reloading') return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
  }
}
