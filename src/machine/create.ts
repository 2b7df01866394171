/**
 * @module machine/create
 * `berth create`: turns a ContainerSpec into a machine systemd knows — settings file,
 * drop-ins, upper/work directories — without starting it. All or nothing: on any failure
 * everything written so far is removed again (files, mount, daemon-reload).
 *
 * The translators write `PrivateUsers=pick` + `PrivateUsersOwnership=map`; berth replaces
 * them with the fixed range it picked (`PrivateUsers=BASE:65536`) and
 * `PrivateUsersOwnership=off`, because the lowers are already idmapped to that range by
 * berth-helper and nspawn cannot idmap an overlay root (see runtime/nspawn/rootfs.ts).
 * A file created as root inside lands in the upper dir owned by host UID BASE — the
 * ownership user namespaces promise (`--userns=host` keeps UID 0).
 */
import { chown, mkdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../base/errors.ts';
import { withLock } from '../base/lock.ts';
import type { ContainerSpec } from '../container/spec.ts';
import { serializeUnit } from '../unit/index.ts';
import type { SnapshotStore } from '../snapshot/index.ts';
import { helperPath, mkdirsInRoot } from '../native/index.ts';
import { attachMachine, detachMachine, networkPlan } from '../network/index.ts';
import {
  daemonReload, reloadIfNeeded, layerPaths, machinePaths, mountRootfs, nspawnDir, pickRange, planFor, rootfsDropInText,
  showMachine, showUnit, systemdIsPid1, takenRanges, toNspawnFile, toServiceDropIns, umountRootfs, writeMachineFiles,
  removeMachineFiles, type MachinePaths, type RootfsPlan, type UidRange,
} from '../runtime/nspawn/index.ts';

/** Static forwarding inits (Docker semantics for StopSignal and exit status), first found wins. */
const INIT_CANDIDATES = ['/usr/bin/catatonit', '/usr/libexec/podman/catatonit', '/usr/bin/tini-static', '/usr/bin/tini'];

export interface MachineContext {
  /** berth's store root (/var/lib/berth): helper, locks, snapshots. */
  berthRoot: string;
  snapshots: SnapshotStore;
}

export interface CreatedMachine {
  paths: MachinePaths;
  plan: RootfsPlan;
  range?: UidRange;
}

export function machinesLock(ctx: Pick<MachineContext, 'berthRoot'>): string {
  return join(ctx.berthRoot, 'locks', 'machines.lock');
}

/** True when anything of a machine called name exists (files, unit, registration, dir). */
export async function machineExists(name: string): Promise<boolean> {
  const p = machinePaths(name);
  if ([p.nspawnFile, p.rootDir, p.stateDir, p.dropInDir].some((f) => existsSync(f))) return true;
  if (!systemdIsPid1()) return false;
  const u = await showUnit(p.unit, ['ActiveState', 'FragmentPath']).catch(() => ({} as Record<string, string>));
  if (u.ActiveState && u.ActiveState !== 'inactive' && u.ActiveState !== 'failed') return true;
  return (await showMachine(name)) !== undefined;
}

function findInit(): string | undefined {
  return INIT_CANDIDATES.find((p) => existsSync(p));
}

async function checkBindSources(spec: ContainerSpec): Promise<void> {
  for (const m of spec.mounts) {
    if (m.type !== 'bind') continue;
    const st = await stat(m.source).catch(() => undefined);
    if (!st) throw new BerthError('NOT_FOUND', `bind-mount source ${m.source} does not exist`, { details: { source: m.source } });
  }
}

/** Creates the machine; `keepMounted` leaves the rootfs mounted for an immediate start. */
export async function createMachine(ctx: MachineContext, spec: ContainerSpec, opts: { keepMounted?: boolean } = {}): Promise<CreatedMachine> {
  const paths = machinePaths(spec.name);
  await checkBindSources(spec);
  return withLock(machinesLock(ctx), async () => {
    if (await machineExists(spec.name)) {
      throw new BerthError('ALREADY_EXISTS', `the name "${spec.name}" is already in use by a machine (see \`berth ps -a\`, \`machinectl list\`)`, { details: { name: spec.name } });
    }
    const layers = await layerPaths(ctx.snapshots, spec.image.chainIds);
    const range = spec.userns === 'pick' ? pickRange(spec.name, await takenRanges(nspawnDir())) : undefined;
    // Translate first: invalid values fail before anything is written.
    // berth-helper doubles as the -u switcher (argv[0] "setuser" inside the container).
    const setuser = spec.boot ? undefined : helperPath();
    const network = networkPlan(spec.name, spec.network);
    const nspawn = toNspawnFile(spec, { initHostPath: spec.boot ? undefined : findInit(), setuserHostPath: setuser, network });
    if (range) {
      nspawn.set('Exec', 'PrivateUsers', `${range.base}:${range.size}`);
      nspawn.set('Files', 'PrivateUsersOwnership', 'off');
    }
    const dropIns = toServiceDropIns(spec, { network }).map((d) => ({ file: d.file, text: serializeUnit(d.unit) }));
    const helper = helperPath();
    const plan = planFor(paths, helper, layers, range);
    dropIns.push({ file: '10-berth-rootfs.conf', text: rootfsDropInText(plan, ctx.snapshots.root) });
    let mounted = false;
    try {
      // Address and ports first: a taken port refuses the machine before anything else exists.
      if (network) await attachMachine(spec.name, spec.network, { hostname: spec.hostname });
      await mkdir(paths.upper, { recursive: true, mode: 0o755 });
      await mkdir(paths.work, { recursive: true, mode: 0o700 });
      if (range) await chown(paths.upper, range.base, range.base);
      await writeMachineFiles(paths, { nspawnText: serializeUnit(nspawn), dropIns });
      await mountRootfs(plan);
      mounted = true;
      await prepareRoot(paths, spec, range);
      if (!opts.keepMounted) {
        await umountRootfs(helper, paths.rootDir);
        mounted = false;
      }
      if (systemdIsPid1()) await reloadIfNeeded(paths.unit);
    } catch (e) {
      if (mounted) await umountRootfs(helper, paths.rootDir).catch(() => {});
      await removeMachineFiles(paths).catch(() => {});
      if (network) await detachMachine(spec.name).catch(() => {});
      if (systemdIsPid1()) await daemonReload().catch(() => {});
      throw e;
    }
    return { paths, plan, range };
  });
}

/**
 * Directories nspawn insists on (/usr: "doesn't look like an OS tree"), mount points of
 * volumes and the working directory, made in the upper dir as the machine's root (else
 * nspawn makes them as host root and they show up inside as nobody). The paths come from
 * the image and resolve *inside* the container's root (berth-helper mkdirs, openat2
 * RESOLVE_IN_ROOT): a symlink `w -> /host/dir` is followed the way the container sees it
 * (dangling: its target is made inside the root, as runc does), and nothing outside the
 * root is ever created or chowned.
 */
async function prepareRoot(paths: MachinePaths, spec: ContainerSpec, range: UidRange | undefined): Promise<void> {
  const dirs = ['/usr', ...spec.mounts.map((m) => m.target)];
  if (spec.process.cwd && spec.process.cwd !== '/') dirs.push(spec.process.cwd);
  await mkdirsInRoot(paths.rootDir, { uid: range?.base ?? 0, gid: range?.base ?? 0 }, dirs);
}
