/**
 * @module testhost/registry
 * Keeps test hosts from outliving their test run and from colliding. Each live host has
 * an owner file `/run/berth-testhost/NAME.json` (owner PID + start time, cgroup dirs,
 * state dir). Every boot first cleans up after test hosts whose owner is dead (a crashed,
 * SIGKILLed or timed-out test process): every process in their `testhost.NAME` cgroups,
 * the cgroups themselves, nspawn's propagate directory and the state dir. A name whose
 * owner is alive is refused. Process exit and SIGINT/SIGTERM/SIGHUP power live hosts off.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { BerthError } from '../../src/base/errors.ts';
import { cgroupsExist, destroyCgroups } from './cgroup.ts';

export const OWNER_DIR = '/run/berth-testhost';
/** SIGRTMIN+4 (glibc SIGRTMIN is 34): systemd starts poweroff.target. */
export const SIGNAL_POWEROFF = 38;
/** SIGRTMIN+5: systemd starts reboot.target; nspawn then exits with 133. */
export const SIGNAL_REBOOT = 39;

export interface Tracked {
  readonly name: string;
  /** Asks systemd inside to power off, without waiting. */
  signalPoweroff(): void;
  /** Synchronous last resort at process exit: wait for the power-off, then clean up. */
  finalizeSync(): void;
  poweroff(): Promise<number>;
}

interface OwnerRecord {
  ownerPid: number;
  ownerStart: string;
  stateDir: string;
  cgroups: string[];
}

const live = new Map<string, Tracked>();
let hooksInstalled = false;

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function ownerFile(name: string): string {
  return `${OWNER_DIR}/${name}.json`;
}

function readOwner(name: string): OwnerRecord | undefined {
  try {
    return JSON.parse(readFileSync(ownerFile(name), 'utf8')) as OwnerRecord;
  } catch {
    return undefined;
  }
}

function ownerAlive(o: OwnerRecord): boolean {
  return startTime(o.ownerPid) === o.ownerStart;
}

export function propagateDir(name: string): string {
  return `/run/systemd/nspawn/propagate/${name}`;
}

/** Removes nspawn's propagate directory (host /run is not a tmpfs, so nspawn refuses to). */
export function removePropagateDir(name: string): void {
  rmSync(propagateDir(name), { recursive: true, force: true });
}

/** Kills and removes everything test host `name` may have left; returns whether anything was there. */
async function reclaim(name: string, dirs: readonly string[], stateDir: string | undefined): Promise<boolean> {
  const found = cgroupsExist(dirs) || existsSync(propagateDir(name));
  try {
    await destroyCgroups(dirs);
  } catch (e) {
    throw new BerthError('INTERNAL', `cannot clean up leftovers of test host ${name}: ${(e as Error).message}`, { cause: e });
  }
  removePropagateDir(name);
  if (stateDir && process.env.BERTH_TESTHOST_KEEP !== '1') rmSync(stateDir, { recursive: true, force: true });
  return found;
}

/**
 * Cleans up after every test host whose owner process is dead (crashed, SIGKILLed, timed
 * out), whatever its name. Returns the names it reclaimed.
 */
export async function reclaimDeadHosts(): Promise<string[]> {
  let files: string[] = [];
  try {
    files = readdirSync(OWNER_DIR).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  const names: string[] = [];
  for (const f of files) {
    const name = f.slice(0, -'.json'.length);
    const owner = readOwner(name);
    if (owner && ownerAlive(owner)) continue;
    if (owner) await reclaim(name, owner.cgroups ?? [], owner.stateDir);
    rmSync(ownerFile(name), { force: true });
    names.push(name);
  }
  return names;
}

/**
 * Claims `name` for this process: cleans up after dead owners (of any name), refuses a
 * name in use by a live owner, and removes stray cgroups of this name. Returns the names
 * whose leftovers were cleaned up.
 */
export async function claimName(name: string, stateDir: string, dirs: readonly string[]): Promise<string[]> {
  if (live.has(name)) throw new BerthError('ALREADY_EXISTS', `test host ${name} is already running in this process`);
  const reclaimed = await reclaimDeadHosts();
  const owner = readOwner(name);
  if (owner && ownerAlive(owner)) {
    throw new BerthError('ALREADY_EXISTS', `test host ${name} is in use by process ${owner.ownerPid}`, { details: { ...owner } });
  }
  if ((await reclaim(name, dirs, undefined)) && !reclaimed.includes(name)) reclaimed.push(name);
  mkdirSync(OWNER_DIR, { recursive: true });
  const rec: OwnerRecord = { ownerPid: process.pid, ownerStart: startTime(process.pid) ?? '', stateDir, cgroups: [...dirs] };
  writeFileSync(ownerFile(name), JSON.stringify(rec) + '\n');
  return reclaimed;
}

/** Gives the name up (after a complete power-off). */
export function releaseName(name: string): void {
  live.delete(name);
  const owner = readOwner(name);
  if (owner?.ownerPid === process.pid) rmSync(ownerFile(name), { force: true });
}

export function track(host: Tracked): void {
  live.set(host.name, host);
  installHooks();
}

export function untrack(host: Tracked): void {
  if (live.get(host.name) === host) live.delete(host.name);
}

/** Powers off every live test host of this process (used by signal handlers and tests). */
export async function poweroffAll(): Promise<void> {
  await Promise.allSettled([...live.values()].map((h) => h.poweroff()));
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    const hosts = [...live.values()];
    for (const h of hosts) h.signalPoweroff();
    for (const h of hosts) h.finalizeSync();
  });
  const signals: Array<[NodeJS.Signals, number]> = [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]];
  for (const [sig, num] of signals) {
    process.once(sig, () => {
      const timer = setTimeout(() => process.exit(128 + num), 20_000);
      void poweroffAll().finally(() => {
        clearTimeout(timer);
        process.exit(128 + num);
      });
    });
  }
}
