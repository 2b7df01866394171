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
import { trace } from '../base/trace.ts';
import type { ContainerSpec } from '../container/spec.ts';
import { serializeUnit } from '../unit/index.ts';
import type { SnapshotStore } from '../snapshot/index.ts';
import { helperPath } from '../native/index.ts';
import { attachMachine, detachMachine, networkPlan } from '../network/index.ts';
import {
  reloadIfNeeded, createNspawnFileExclusive, layerPaths, machineInfo, machinePaths, mountRootfs, nspawnDir,
  pickAndClaimRange, planFor, rangesInUse, releaseRange, rootfsDropInText, startMountArgs, systemdIsPid1, isPlainExecArg, takenRanges, toNspawnFile, toServiceDropIns,
  umountRootfs, unitState, writeDropIns, removeMachineFiles, volumeSteps, ensureFilterCache, seccompStart,
  type MachinePaths, type SeccompStart, type RootfsPlan, type RootDirs, type UidRange, type VolumeKind, type VolumeSteps,
} from '../runtime/nspawn/index.ts';
import { run } from '../base/exec.ts';

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
  /** Staging of the volumes, for a start without the unit (attached run). */
  volumes: VolumeSteps;
  /** nspawn through nspawn-start (cached seccomp filter), for the unit and an attached run. */
  start?: SeccompStart;
  /**
   * Set when create left the rootfs unmounted for the attached run to mount in its own
   * mount namespace (mountInForeground): the directories to make in it then.
   */
  dirs?: RootDirs;
}

export function machinesLock(ctx: Pick<MachineContext, 'berthRoot'>): string {
  return join(ctx.berthRoot, 'locks', 'machines.lock');
}

/** True when anything of a machine called name exists (files, unit, registration, dir). */
export async function machineExists(name: string): Promise<boolean> {
  const p = machinePaths(name);
  if ([p.nspawnFile, p.rootDir, p.stateDir, p.dropInDir].some((f) => existsSync(f))) return true;
  if (!systemdIsPid1()) return false;
  // Neither call loads the unit (a look must not leave systemd holding a stale copy).
  const [u, m] = await Promise.all([unitState(p.unit), machineInfo(name)]);
  if (u.activeState !== 'inactive' && u.activeState !== 'failed') return true;
  return m !== undefined;
}

/**
 * Per-machine lock: create, rm and rename of one name exclude each other, while machines
 * of other names proceed in parallel. Creates take no global lock at all (name and UID
 * range are claimed with exclusive file creation), so 100 creates at once do not queue.
 */
export function machineLock(ctx: Pick<MachineContext, 'berthRoot'>, name: string): string {
  return join(ctx.berthRoot, 'locks', `machine-${name}.lock`);
}

function alreadyExists(name: string): BerthError {
  return new BerthError('ALREADY_EXISTS', `the name "${name}" is already in use by a machine (see \`berth ps -a\`, \`machinectl list\`)`, { details: { name } });
}

function findInit(): string | undefined {
  return INIT_CANDIDATES.find((p) => existsSync(p));
}

/** Checks that every volume source exists; returns the kind of each (for its staging point). */
async function checkBindSources(spec: ContainerSpec): Promise<(VolumeKind | undefined)[]> {
  const kinds: (VolumeKind | undefined)[] = [];
  for (const m of spec.mounts) {
    kinds.push(undefined);
    if (m.type !== 'bind') continue;
    const st = await stat(m.source).catch(() => undefined);
    if (!st) throw new BerthError('NOT_FOUND', `bind-mount source ${m.source} does not exist`, { details: { source: m.source } });
    if (!st.isDirectory() && !st.isFile()) {
      throw new BerthError('INVALID_ARGUMENT', `bind-mount source ${m.source} is neither a directory nor a regular file`, { details: { source: m.source } });
    }
    kinds[kinds.length - 1] = st.isDirectory() ? 'dir' : 'file';
  }
  return kinds;
}

/**
 * `-v SRC:DST:U`: gives the source tree to the container's user (Podman's meaning), as host
 * IDs inside the machine's range. GNU chown -R -P -h walks with file descriptors and never
 * follows a symlink, so a link that an earlier container left in the volume cannot redirect
 * the chown. Only numeric `-u`/image users are resolved here; a named user means root.
 */
async function chownVolumes(spec: ContainerSpec, range: UidRange | undefined): Promise<void> {
  const base = range?.base ?? 0;
  const [u = '0', g] = (spec.process.user ?? '0').split(':');
  const uid = /^\d+$/.test(u) ? Number(u) : 0;
  const gid = g !== undefined && /^\d+$/.test(g) ? Number(g) : uid;
  for (const m of spec.mounts) {
    if (m.type !== 'bind' || !m.chown) continue;
    await run(['chown', '-R', '-P', '-h', `${base + uid}:${base + gid}`, '--', m.source], { timeoutMs: 600_000, errorCode: 'FAILED_PRECONDITION' });
  }
}

/**
 * Creates the machine. `keepMounted` leaves the rootfs mounted for an immediate start;
 * `mountInForeground` does not mount it at all: an attached run without systemd as PID 1
 * mounts it in the mount namespace it gives nspawn (foreground.ts), with the directories
 * create would have made, so nothing is mounted on the host (two helper runs fewer).
 * `mountAtStart` (run -d: the unit starts next) leaves the mount and the directories to
 * the unit's start (nspawn-start --mount, or ExecStartPre= in 10-berth-rootfs.conf), which
 * makes them too: one helper run from berth fewer per run -d (~10 ms), and a mount that
 * fails shows as a failed start.
 */
export async function createMachine(ctx: MachineContext, spec: ContainerSpec, opts: { keepMounted?: boolean; mountInForeground?: boolean; mountAtStart?: boolean } = {}): Promise<CreatedMachine> {
  const paths = machinePaths(spec.name);
  const volumeKinds = await checkBindSources(spec);
  // Outside every lock: what does not depend on the UID range (and may be slow).
  const layers = await layerPaths(ctx.snapshots, spec.image.chainIds);
  // berth-helper doubles as the -u switcher (argv[0] "setuser" inside the container).
  const setuser = spec.boot ? undefined : helperPath();
  // Translate first: invalid values fail before anything is written.
  const network = networkPlan(spec.name, spec.network);
  const init = spec.boot ? undefined : findInit();
  const helper = helperPath();
  // nspawn's seccomp filter compiled once (runtime/nspawn/seccomp.ts): only with berth's init.
  const start = init === undefined ? undefined : seccompStart(spec.name, helper);
  const cached = start === undefined ? Promise.resolve() : ensureFilterCache(helper);
  const nspawn = toNspawnFile(spec, { initHostPath: init, setuserHostPath: setuser, network, seccomp: start });
  const unitFiles = (s: SeccompStart | undefined) => toServiceDropIns(spec, { network, volumeKinds, start: s }).map((d) => ({ file: d.file, text: serializeUnit(d.unit) }));
  let dropIns = unitFiles(start);
  trace('create: translated');
  // Another machine of this name (berth's, machinectl's, a unit): refuse before any work.
  // Its D-Bus look is under way while the ranges in use are read (synchronous reads of
  // /proc and the .nspawn files: ~10-20 ms with 100 machines running). Reading them before
  // the claim is safe: concurrent creates are told apart by their exclusive claim files.
  const exists = machineExists(spec.name);
  exists.catch(() => {}); // awaited below; a failure of the reads must not leave it unhandled
  const taken = spec.userns === 'private' ? [...(await rangesInUse()), ...(await takenRanges(nspawnDir()))] : [];
  trace('create: ranges in use read');
  if (await exists) throw alreadyExists(spec.name);
  trace('create: name checked');
  return withLock(machineLock(ctx, spec.name), async () => {
    // The claims, without a global lock: the UID range by an exclusive claim file, then the
    // name by creating the .nspawn file exclusively (it carries the range from then on).
    const range = spec.userns === 'private' ? await pickAndClaimRange(spec.name, taken) : undefined;
    if (range) {
      nspawn.set('Exec', 'PrivateUsers', `${range.base}:${range.size}`);
      nspawn.set('Files', 'PrivateUsersOwnership', 'off');
    }
    let claimed = false;
    try {
      claimed = await createNspawnFileExclusive(paths, serializeUnit(nspawn));
    } finally {
      if (!claimed && range) await releaseRange(range.base);
    }
    if (!claimed) throw alreadyExists(spec.name);
    trace('create: name and UID range claimed');
    const plan = planFor(paths, helper, layers, range);
    // The directories nspawn and the volumes need in the root (a file volume's mount point
    // nspawn makes itself; a directory there would fail). The unit's mount makes them on
    // every start (idempotent) when each can be written into a unit file as it is.
    const dirs = rootDirs({ ...spec, mounts: spec.mounts.filter((_, i) => volumeKinds[i] !== 'file') }, range);
    const unitDirs = dirs.paths.every(isPlainExecArg) ? dirs : undefined;
    // Through nspawn-start, the unit's ExecStart= mounts the root itself (--mount): no
    // ExecStartPre= of its own. The start drop-in needs the UID range, known only now.
    if (start) dropIns = unitFiles({ ...start, mount: startMountArgs(plan, unitDirs) });
    dropIns.push({ file: '10-berth-rootfs.conf', text: rootfsDropInText(plan, ctx.snapshots.root, unitDirs, start !== undefined) });
    const mountNow = !opts.mountInForeground && !(opts.mountAtStart && unitDirs);
    let mounted = false;
    try {
      // Address and ports first: a taken port refuses the machine before anything else exists.
      if (network) await attachMachine(spec.name, spec.network, { hostname: spec.hostname });
      await mkdir(paths.upper, { recursive: true, mode: 0o755 });
      await mkdir(paths.work, { recursive: true, mode: 0o700 });
      if (range) await chown(paths.upper, range.base, range.base);
      // The drop-ins (written and fsynced on the thread pool) while the helper mounts the
      // rootfs and makes its directories in the same run: nothing reads the drop-ins
      // before the start, and either failing undoes both below. ~5-10 ms per create.
      if (mountNow) mounted = true; // a mount that succeeds before its mkdirs fail is undone too
      const steps = [writeDropIns(paths, dropIns).then(() => trace('create: files written'))];
      if (mountNow) steps.push(mountRootfs(plan, dirs).then(() => trace('create: rootfs mounted, directories made')));
      await settleAll(steps);
      await chownVolumes(spec, range);
      if (mounted && !opts.keepMounted) {
        await umountRootfs(helper, paths.rootDir);
        mounted = false;
      }
      // A unit systemd never loaded is read fresh at start: no reload. One it still holds
      // (an earlier machine of this name) is reloaded, shared with concurrent creates.
      if (systemdIsPid1()) await reloadIfNeeded(paths.unit);
    } catch (e) {
      if (mounted) await umountRootfs(helper, paths.rootDir).catch(() => {});
      await removeMachineFiles(paths).catch(() => {});
      if (network) await detachMachine(spec.name).catch(() => {});
      if (range) await releaseRange(range.base);
      if (systemdIsPid1()) await reloadIfNeeded(paths.unit).catch(() => {});
      throw e;
    }
    await cached;
    return { paths, plan, range, volumes: volumeSteps(spec, volumeKinds), ...(start ? { start } : {}), ...(opts.mountInForeground ? { dirs } : {}) };
  });
}

/** Waits for every promise (none is left running), then throws the first failure. */
async function settleAll(ps: Array<Promise<unknown>>): Promise<void> {
  const r = await Promise.allSettled(ps);
  const failed = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Directories nspawn insists on (/usr: "doesn't look like an OS tree"), mount points of
 * volumes and the working directory, made in the upper dir as the machine's root (else
 * nspawn makes them as host root and they show up inside as nobody). The paths come from
 * the image and resolve *inside* the container's root (berth-helper mount --mkdir, as mkdirs: openat2
 * RESOLVE_IN_ROOT): a symlink `w -> /host/dir` is followed the way the container sees it
 * (dangling: its target is made inside the root, as runc does), and nothing outside the
 * root is ever created or chowned.
 */
function rootDirs(spec: ContainerSpec, range: UidRange | undefined): RootDirs {
  const paths = ['/usr', ...spec.mounts.map((m) => m.target)];
  if (spec.process.cwd && spec.process.cwd !== '/') paths.push(spec.process.cwd);
  return { owner: { uid: range?.base ?? 0, gid: range?.base ?? 0 }, paths };
}
