/**
 * @module machine/lifecycle
 * start/stop/restart/kill/rm/rename/enable/disable on systemd-nspawn@NAME.service, over
 * D-Bus (StartUnit/StopUnit waiting for the job's JobRemoved, KillUnit, KillMachine,
 * TerminateMachine, ResetFailedUnit), so berth, systemctl and machinectl act on the same
 * unit. `stop -t S` is StopUnit with a SIGKILL (KillUnit) after S seconds when the stop
 * job is still running (the drop-in's TimeoutStopSec= is the default), so a restart
 * policy never revives a stopped machine. `rm` removes every trace: unit state,
 * wants-link, registration, mount, files, upper dir; it takes only the machine's own
 * lock, so removals of different machines run in parallel, and it reloads systemd only
 * when systemd still holds the unit (shared with concurrent removals).
 */
import { existsSync } from 'node:fs';
import { mkdir, rename as fsRename, rm, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../base/errors.ts';
import { run } from '../base/exec.ts';
import { withLock } from '../base/lock.ts';
import { trace } from '../base/trace.ts';
import { parseUnit, serializeUnit } from '../unit/index.ts';
import { readFile } from 'node:fs/promises';
import {
  isRunningState, releaseRange, killMachineLeader, killUnit, machineInfo, machinePaths, planFor, reloadIfNeeded, removeMachineFiles, requireSystemd,
  resetFailed, rootfsDropInText, startMountArgs, signalNumber, startUnit, stopUnit, systemdIsPid1, terminateMachine, umountRootfs, unitDir, unitState,
  waitInactive, layerPaths, parsePrivateUsers, renameNetworkFiles, renameStartFiles, ensureFilterCache, warmCgroupAttach,
} from '../runtime/nspawn/index.ts';
import { machineExists, machineLock, machinesLock, type MachineContext } from './create.ts';
import { checkPortsFree, detachMachine, renameAttachment } from '../network/index.ts';
import { parseDigest } from '../base/digest.ts';
import { helperPath } from '../native/index.ts';

async function requireMachine(name: string): Promise<ReturnType<typeof machinePaths>> {
  const p = machinePaths(name);
  if (!existsSync(p.nspawnFile) && !(await machineExists(name))) {
    throw new BerthError('NOT_FOUND', `no such container: ${name}`, { details: { name } });
  }
  return p;
}

async function journalTail(unit: string, n = 10): Promise<string> {
  const r = await run(['journalctl', '-u', unit, '-n', String(n), '--no-pager', '-o', 'cat'], { reject: false, timeoutMs: 10_000 });
  return r.stdout.trim();
}

/**
 * Starts the unit; resolves once it is active (nspawn reports READY when the payload runs).
 * `fresh`: created by this process a moment ago (run -d), which already checked its ports
 * and reloaded systemd if it held an older copy of the unit, so only the reset is left.
 */
export async function startMachine(name: string, opts: { fresh?: boolean } = {}): Promise<void> {
  requireSystemd('starting a container in the background');
  warmCgroupAttach(); // run -d warmed it at its create already: then this keeps it warm (~0.1 ms)
  const p = opts.fresh ? machinePaths(name) : await requireMachine(name);
  if (!opts.fresh) await checkPortsFree(name);
  // An explicit start always means "start now": clear a failed state and systemd's start
  // rate limit (hit by quick stop/start cycles), as `docker start` would not refuse either.
  // systemd still holding an older copy of the unit (files changed since) reloads first.
  // After a boot the seccomp cache is gone until berth makes it (create does; so does a start).
  await Promise.all([resetFailed(p.unit), opts.fresh ? undefined : reloadIfNeeded(p.unit), opts.fresh ? undefined : ensureFilterCache(helperPath())]);
  trace('start: reset-failed, reload check');
  const result = await startUnit(p.unit);
  if (result !== 'done') {
    throw new BerthError('FAILED_PRECONDITION', `starting ${name} failed: the start job ended with "${result}" (see \`journalctl -u ${p.unit}\`)\n${await journalTail(p.unit)}`, { details: { unit: p.unit, result } });
  }
}

export async function isActive(name: string): Promise<boolean> {
  if (!systemdIsPid1()) return false;
  return isRunningState((await unitState(machinePaths(name).unit)).activeState);
}

export async function stopMachine(name: string, opts: { timeoutSec?: number } = {}): Promise<void> {
  requireSystemd('stopping a background container');
  const p = await requireMachine(name);
  let timer: NodeJS.Timeout | undefined;
  if (opts.timeoutSec !== undefined) {
    timer = setTimeout(() => {
      void killUnit(p.unit, 9).catch(() => {});
    }, opts.timeoutSec * 1000);
  }
  const result = await stopUnit(p.unit).finally(() => clearTimeout(timer));
  if (result !== 'done') throw new BerthError('FAILED_PRECONDITION', `stopping ${name} failed: the stop job ended with "${result}"`, { details: { unit: p.unit, result } });
}

export async function restartMachine(name: string, opts: { timeoutSec?: number } = {}): Promise<void> {
  await stopMachine(name, opts);
  await startMachine(name);
}

/** Sends a signal to the container's PID 1 (the forwarding init passes it to the command). */
export async function killMachine(name: string, signal = 'SIGKILL'): Promise<void> {
  requireSystemd('kill');
  const signo = signalNumber(signal);
  await requireMachine(name);
  if (!(await machineInfo(name))) throw new BerthError('FAILED_PRECONDITION', `container ${name} is not running`);
  await killMachineLeader(name, signo);
}

function wantsLink(name: string): string {
  return join(unitDir(), 'machines.target.wants', machinePaths(name).unit);
}

export async function enableMachine(name: string): Promise<void> {
  const p = await requireMachine(name);
  if (systemdIsPid1()) {
    await run(['machinectl', 'enable', '--', name], { errorCode: 'FAILED_PRECONDITION', timeoutMs: 60_000 });
    return;
  }
  // Without systemd as PID 1: the same symlink `machinectl enable` makes.
  await mkdir(join(unitDir(), 'machines.target.wants'), { recursive: true });
  if (!existsSync(wantsLink(name))) await symlink('/lib/systemd/system/systemd-nspawn@.service', wantsLink(name));
  void p;
}

export async function disableMachine(name: string): Promise<void> {
  await requireMachine(name);
  if (systemdIsPid1()) await run(['machinectl', 'disable', '--', name], { errorCode: 'FAILED_PRECONDITION', timeoutMs: 60_000 });
  await unlink(wantsLink(name)).catch(() => {});
}

/** Removes the machine; a running one only with force (killed first). Idempotent with force. */
export async function removeMachine(ctx: MachineContext, name: string, opts: { force?: boolean } = {}): Promise<void> {
  const p = machinePaths(name);
  if (!opts.force) await requireMachine(name);
  await withLock(machineLock(ctx, name), async () => {
    if (systemdIsPid1()) {
      if (await isActive(name)) {
        if (!opts.force) throw new BerthError('FAILED_PRECONDITION', `container ${name} is running: stop it first or use rm -f`);
        await killUnit(p.unit, 9).catch(() => {});
        await stopUnit(p.unit, 30_000).catch(() => {});
        await waitInactive(p.unit, 30_000);
      }
      await terminateMachine(name);
    }
    trace('rm: locked, stopped');
    await unlink(wantsLink(name)).catch(() => {});
    await umountRootfs(helperPath(), p.rootDir).catch(() => {});
    trace('rm: unmounted');
    const range = parsePrivateUsers(/^\s*PrivateUsers\s*=\s*(.*)$/m.exec(await readFile(p.nspawnFile, 'utf8').catch(() => ''))?.[1] ?? '');
    await removeMachineFiles(p);
    trace('rm: files removed');
    await detachMachine(name);
    if (range) await releaseRange(range.base);
    trace('rm: detached, range released');
    if (systemdIsPid1()) {
      const since = Date.now();
      await resetFailed(p.unit);
      // Usually systemd has collected the unit by now (inactive, nothing refers to it):
      // then there is nothing to reload.
      await reloadIfNeeded(p.unit, since);
    }
  });
}

/** Renames a stopped machine: settings, drop-ins, upper dir, wants-link; same UID range. */
export async function renameMachine(ctx: MachineContext, from: string, to: string): Promise<void> {
  const a = await requireMachine(from);
  const b = machinePaths(to);
  await withLock(machinesLock(ctx), () => withLock(machineLock(ctx, from), () => withLock(machineLock(ctx, to), async () => {
    if (await machineExists(to)) throw new BerthError('ALREADY_EXISTS', `the name "${to}" is already in use`);
    if (await isActive(from)) throw new BerthError('FAILED_PRECONDITION', `container ${from} is running: stop it before renaming`);
    const enabled = existsSync(wantsLink(from));
    await umountRootfs(helperPath(), a.rootDir).catch(() => {});
    const nspawn = parseUnit(await readFile(a.nspawnFile, 'utf8'));
    const chainIds = nspawn.getAll('X-Berth', 'ChainId').map((c) => parseDigest(c));
    const range = parsePrivateUsers(nspawn.get('Exec', 'PrivateUsers') ?? '');
    await fsRename(a.nspawnFile, b.nspawnFile);
    if (existsSync(a.dropInDir)) await fsRename(a.dropInDir, b.dropInDir);
    if (existsSync(a.stateDir)) await fsRename(a.stateDir, b.stateDir);
    const helper = helperPath();
    const plan = planFor(b, helper, await layerPaths(ctx.snapshots, chainIds), range);
    const start = await renameStartFiles(b, from, helper, startMountArgs(plan));
    const net = await renameAttachment(from, to);
    if (net) await renameNetworkFiles(b, from, net, start);
    await rm(a.rootDir, { recursive: false, force: true }).catch(() => {});
    const { writeFileAtomic } = await import('../base/fs.ts');
    // The start drop-in written above mounts the root (nspawn-start --mount), or else ExecStartPre= does.
    const inStart = start !== undefined && (net !== undefined || existsSync(join(b.dropInDir, '40-berth-start.conf')));
    await writeFileAtomic(b.rootfsDropIn, rootfsDropInText(plan, ctx.snapshots.root, undefined, inStart));
    // Description= names the machine; rewrite it when it is berth's.
    const unitConf = join(b.dropInDir, '50-berth-unit.conf');
    if (existsSync(unitConf)) {
      const u = parseUnit(await readFile(unitConf, 'utf8'));
      const d = u.get('Unit', 'Description');
      if (d?.startsWith(`berth container ${from} `)) u.set('Unit', 'Description', d.replace(`container ${from} `, `container ${to} `));
      await writeFileAtomic(unitConf, serializeUnit(u));
    }
    if (enabled) {
      await unlink(wantsLink(from)).catch(() => {});
      await symlink('/lib/systemd/system/systemd-nspawn@.service', wantsLink(to));
    }
    if (systemdIsPid1()) {
      const since = Date.now();
      await resetFailed(a.unit);
      await reloadIfNeeded(a.unit, since);
      await reloadIfNeeded(b.unit, since);
    }
  })));
}
