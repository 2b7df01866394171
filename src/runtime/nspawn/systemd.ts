/**
 * @module runtime/nspawn/systemd
 * The places berth reads runtime state from and acts through: systemd's Manager and
 * machined, over D-Bus (src/dbus), never by parsing systemctl/machinectl text. berth keeps
 * no private copy, so `systemctl`, `machinectl` and `berth` always agree.
 *
 * Reloads. A unit systemd has not loaded is read fresh from disk when it is first needed
 * (StartUnit loads it; systemd 252 rescans unit directories whose mtime changed), so
 * writing a new machine's files needs no daemon-reload; GetUnit (unlike `systemctl show`)
 * does not load a unit, so looking never makes one stale. Only a unit that is loaded and
 * says NeedDaemonReload=yes gets one, and concurrent berth processes share it
 * (sharedReload): a reload that *started* after a process's files were final covers that
 * process too, so 100 removals at once cost one or two reloads, not 100.
 */
import { isRunningState } from '../runtime.ts';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { BerthError, isBerthError } from '../../base/errors.ts';
import { run, type ExecResult } from '../../base/exec.ts';
import { withLock } from '../../base/lock.ts';
import { SERVICE_IFACE, UNIT_IFACE, dbusErrorName, machined, systemd, type JobResult, type MachineAddress, type MachineInfo } from '../../dbus/index.ts';

/** sd_booted(): systemd is PID 1 when /run/systemd/system exists. */
export function systemdIsPid1(): boolean {
  return existsSync('/run/systemd/system');
}

export function requireSystemd(what: string): void {
  if (!systemdIsPid1()) {
    throw new BerthError('FAILED_PRECONDITION', `${what} needs systemd as PID 1, and PID 1 on this host is not systemd (run it in the foreground, without -d)`);
  }
}

/** systemctl, for the verbs with no single D-Bus call (enable/disable write symlinks). */
export function systemctl(args: string[], opts: { reject?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
  return run(['systemctl', ...args], { reject: opts.reject, timeoutMs: opts.timeoutMs ?? 60_000, errorCode: 'FAILED_PRECONDITION' });
}

/** Where concurrent berth processes coordinate reloads (per boot, like systemd's state). */
export function reloadStateDir(): string {
  return process.env.BERTH_RUN_DIR ?? '/run/berth';
}

/**
 * daemon-reload shared between processes: `since` is when the caller's unit files became
 * final (Date.now() after writing them). Under a lock, a reload that started at or after
 * `since` (recorded in reload.stamp) already covers the caller; otherwise it reloads.
 */
export async function sharedReload(since = Date.now()): Promise<'reloaded' | 'shared'> {
  const dir = reloadStateDir();
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const stamp = `${dir}/reload.stamp`;
  return withLock(`${dir}/reload.lock`, async () => {
    const last = Number((await readFile(stamp, 'utf8').catch(() => '0')).trim()) || 0;
    if (last >= since) return 'shared';
    const started = Date.now();
    await (await systemd()).reload();
    await writeFile(stamp, `${started}\n`);
    return 'reloaded';
  }, { timeoutMs: 120_000 });
}

export async function daemonReload(): Promise<void> {
  await sharedReload(Date.now());
}

/** Reloads only when systemd has the unit loaded and its files changed since. */
export async function reloadIfNeeded(unit: string, since = Date.now()): Promise<boolean> {
  const sd = await systemd();
  const path = await sd.getUnit(unit);
  if (!path) return false;
  const need = await sd.unitProperty(path, UNIT_IFACE, 'NeedDaemonReload').catch(() => true);
  if (need !== true) return false;
  await sharedReload(since);
  return true;
}

export interface UnitState {
  id: string;
  loadState: string;
  activeState: string;
  subState: string;
}

/** ActiveState of a unit without loading it: a unit systemd has not loaded is inactive/dead. */
export async function unitState(unit: string): Promise<UnitState> {
  const [u] = await (await systemd()).listUnitsByPatterns([], [unit]);
  return u && u.id === unit
    ? { id: u.id, loadState: u.loadState, activeState: u.activeState, subState: u.subState }
    : { id: unit, loadState: 'not-loaded', activeState: 'inactive', subState: 'dead' };
}

export { isRunningState };

const UINT64_MAX = 18446744073709551615n;

/** systemd's format_timestamp(): "Tue 2026-12-01 14:11:23 UTC" in local time; '' for 0. */
export function formatTimestamp(usec: bigint | number): string {
  const n = typeof usec === 'bigint' ? usec : BigInt(Math.trunc(usec));
  if (n === 0n || n === UINT64_MAX) return '';
  const d = new Date(Number(n / 1000n));
  const p = (x: number): string => String(x).padStart(2, '0');
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getDay()];
  const tz = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d).find((x) => x.type === 'timeZoneName')?.value ?? '';
  return `${day} ${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}${tz ? ` ${tz.replace(/^GMT$/, 'UTC')}` : ''}`;
}

/** A D-Bus property value as `systemctl show` prints it (numbers, yes/no, infinity, lists). */
export function showValue(name: string, v: unknown): string {
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'bigint') {
    if (/Timestamp$/.test(name)) return formatTimestamp(v);
    if (v === UINT64_MAX) return /Max$|USec$|Limit$/.test(name) ? 'infinity' : '[not set]';
    return v.toString();
  }
  if (typeof v === 'number' || typeof v === 'string') return String(v);
  if (Array.isArray(v)) return v.every((x) => typeof x === 'string' || typeof x === 'number') ? v.join(' ') : '';
  return '';
}

/** Unit and Service properties of a unit (raw D-Bus values); loads it like `systemctl show`. */
export async function unitProperties(unit: string, opts: { load?: boolean } = {}): Promise<Record<string, unknown> | undefined> {
  const sd = await systemd();
  const path = opts.load === false ? await sd.getUnit(unit) : await sd.loadUnit(unit);
  if (!path) return undefined;
  const [u, s] = await Promise.all([
    sd.unitProperties(path, UNIT_IFACE),
    unit.endsWith('.service') ? sd.unitProperties(path, SERVICE_IFACE).catch(() => ({})) : Promise.resolve({}),
  ]);
  return { ...u, ...s };
}

/** `systemctl show -p … UNIT` as a record of strings (every property when props is empty). */
export async function showUnit(unit: string, props: readonly string[] = []): Promise<Record<string, string>> {
  const all = (await unitProperties(unit)) ?? {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(all)) if (props.length === 0 || props.includes(k)) out[k] = showValue(k, v);
  return out;
}

/** machined's record of a machine; undefined when it is not registered (or machined is absent). */
export async function machineInfo(name: string): Promise<MachineInfo | undefined> {
  try {
    return await (await machined()).machine(name);
  } catch (e) {
    if (machinedMissing(e)) return undefined;
    throw e;
  }
}

/** The container's addresses as machined reads them from its network namespace. */
export async function machineAddresses(name: string): Promise<MachineAddress[]> {
  return (await machined()).addresses(name);
}

/** Sends a signal to the machine's leader (its PID 1) or to all its processes. */
export async function killMachineLeader(name: string, signal: number, who: 'leader' | 'all' = 'leader'): Promise<void> {
  await (await machined()).kill(name, who, signal);
}

/** TerminateMachine; a machine that is not registered (any more) is fine. */
export async function terminateMachine(name: string): Promise<void> {
  try {
    await (await machined()).terminate(name);
  } catch (e) {
    if (!(dbusErrorName(e) === 'org.freedesktop.machine1.NoSuchMachine' || machinedMissing(e))) throw e;
  }
}

function machinedMissing(e: unknown): boolean {
  return /ServiceUnknown|NameHasNoOwner|Spawn/.test(dbusErrorName(e) ?? '');
}

/** `machinectl show NAME` as strings; undefined when the machine is not registered. */
export async function showMachine(name: string): Promise<Record<string, string> | undefined> {
  const m = await machineInfo(name);
  if (!m) return undefined;
  return {
    Name: m.name, Id: m.id, Timestamp: formatTimestamp(m.timestamp), Service: m.service, Unit: m.unit,
    Leader: String(m.leader), Class: m.class, RootDirectory: m.rootDirectory, NetworkInterfaces: m.networkInterfaces.join(' '), State: m.state,
  };
}

export interface MachineListEntry {
  machine: string;
  class: string;
  service: string;
}

/** Registered machines (ListMachines). Empty when machined is unavailable. */
export async function listMachines(): Promise<MachineListEntry[]> {
  try {
    return (await (await machined()).listMachines()).map((m) => ({ machine: m.name, class: m.class, service: m.service }));
  } catch (e) {
    if (machinedMissing(e)) return [];
    throw e;
  }
}

/** Loaded systemd-nspawn@*.service units, any state (one ListUnitsByPatterns). */
export async function listNspawnUnits(): Promise<UnitState[]> {
  const rows = await (await systemd()).listUnitsByPatterns([], ['systemd-nspawn@*.service']);
  return rows.map((u) => ({ id: u.id, loadState: u.loadState, activeState: u.activeState, subState: u.subState }));
}

/** A signal name (SIGKILL, KILL, 9) as its number; INVALID_ARGUMENT for anything else. */
export function signalNumber(sig: string): number {
  if (/^\d+$/.test(sig)) {
    const n = Number(sig);
    if (n >= 1 && n <= 64) return n;
  } else {
    const name = (sig.startsWith('SIG') ? sig : `SIG${sig}`).toUpperCase() as NodeJS.Signals;
    const n = osConstants.signals[name];
    if (n !== undefined) return n;
    const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name);
    if (rt && 34 + Number(rt[1] ?? 0) <= 64) return 34 + Number(rt[1] ?? 0);
  }
  throw new BerthError('INVALID_ARGUMENT', `unknown signal ${JSON.stringify(sig)}`);
}

/** StartUnit, resolved with the job's result once JobRemoved reports it. */
export async function startUnit(unit: string, timeoutMs?: number): Promise<JobResult> {
  return (await systemd()).runJob('StartUnit', unit, { timeoutMs });
}

export async function stopUnit(unit: string, timeoutMs?: number): Promise<JobResult> {
  return (await systemd()).runJob('StopUnit', unit, { timeoutMs });
}

export async function killUnit(unit: string, signal: number, who: 'main' | 'control' | 'all' = 'all'): Promise<void> {
  await (await systemd()).killUnit(unit, who, signal);
}

/** reset-failed; a unit systemd does not know is fine (nothing to reset). */
export async function resetFailed(unit: string): Promise<void> {
  try {
    await (await systemd()).resetFailedUnit(unit);
  } catch (e) {
    if (!(isBerthError(e, 'NOT_FOUND') || dbusErrorName(e) === 'org.freedesktop.systemd1.NoSuchUnit')) throw e;
  }
}

/** Waits until the unit is no longer active/deactivating; false on timeout. */
export async function waitInactive(unit: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 200)) {
    if (!isRunningState((await unitState(unit)).activeState)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
  }
}
