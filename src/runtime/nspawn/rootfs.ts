/**
 * @module runtime/nspawn/rootfs
 * A machine's root filesystem: overlayfs with the image's layer snapshots as lowers and the
 * machine's own upper/work directories, mounted on /var/lib/machines/NAME.
 *
 * Decision: not a .mount unit but an "equivalent" the service requires — `berth-helper
 * mount` in the unit's start (nspawn-start --mount in ExecStart=, or an ExecStartPre= in
 * 10-berth-rootfs.conf for a machine that does not start through nspawn-start) and
 * `berth-helper umount` in that drop-in's ExecStopPost=. Why:
 * with user namespaces each lower must be an *idmapped* mount (idmapping the overlay
 * itself fails with EINVAL; nspawn's PrivateUsersOwnership=map on an overlay root fails:
 * "ID mapped mounts are apparently not available"), and neither mount(8) of util-linux
 * 2.38 (it ignores X-mount.idmap) nor a mount unit can make one. berth-helper (static C,
 * native/mount.c, ~1 ms) mounts every EROFS layer file-backed (or on a loop device) as a
 * detached mount, read-only, nosuid, nodev, idmaps it, and passes /proc/self/fd/N to
 * overlayfs: only the overlay shows in the mount table, nothing is ever chowned, the cost
 * does not depend on image size, and it works the same with systemd (unit start, also
 * after a reboot via machines.target) and without (foreground run). The drop-in names the
 * helper of berth's installation (root-owned), never a copy in the store, and spells out
 * every layer path, so an admin sees what the rootfs is made of.
 */
import { readFile, realpath } from 'node:fs/promises';
import type { Digest } from '../../base/digest.ts';
import { BerthError } from '../../base/errors.ts';
import { mkdirsInRoot, mountMkdirOptions, runHelper } from '../../native/index.ts';
import type { SnapshotStore } from '../../snapshot/index.ts';
import type { MachinePaths } from './paths.ts';

export interface UidRange {
  base: number;
  size: number;
}

export interface RootfsPlan {
  /** Absolute path of berth-helper (this installation's). */
  helper: string;
  /** Layer snapshot paths (EROFS image files or directories), bottom first. */
  layers: string[];
  target: string;
  upper: string;
  work: string;
  /** Idmap for the lowers; undefined with --userns=host. */
  idmap?: UidRange;
}

/** The layer snapshot paths for chainIds (bottom first), in whatever format each exists. */
export async function layerPaths(store: SnapshotStore, chainIds: readonly Digest[]): Promise<string[]> {
  const out: string[] = [];
  for (const id of chainIds) {
    const s = await store.find(id);
    if (!s) throw new BerthError('NOT_FOUND', `layer snapshot ${id} is missing (run \`berth image fsck --repair\`)`);
    out.push(s.format === 'erofs' ? store.layout.erofsImage(id) : store.layout.dirLower(id));
  }
  return out;
}

const SAFE_ARG = /^[A-Za-z0-9/._@+:-]+$/;

/** One Exec*= argument; refuses anything systemd would expand or split (%, $, space, quotes). */
export function execArg(a: string): string {
  if (!isPlainExecArg(a)) throw new BerthError('INVALID_ARGUMENT', `path ${JSON.stringify(a)} cannot be used in a unit file (allowed: letters, digits, / . _ @ + : -)`);
  return a;
}

/** Whether a can be written into an Exec*= line as it is (execArg would accept it). */
export function isPlainExecArg(a: string): boolean {
  return SAFE_ARG.test(a);
}

export function mountArgv(p: RootfsPlan): string[] {
  const argv = [p.helper, 'mount', '--target', p.target, '--upper', p.upper, '--work', p.work];
  if (p.idmap) argv.push('--idmap', `${p.idmap.base}:${p.idmap.size}`);
  return [...argv, ...p.layers];
}

export function umountArgv(helper: string, target: string): string[] {
  return [helper, 'umount', target];
}

/**
 * The drop-in that assembles the rootfs before nspawn starts and takes it apart after.
 * `inStart`: the machine's ExecStart= (`berth-helper nspawn-start --mount …`, whose
 * arguments come from mountArgs too) mounts it, so there is no ExecStartPre= here: systemd
 * 252 spends ~4-6 ms on every further Exec command of a start.
 */
export function rootfsDropInText(p: RootfsPlan, storeDir: string, dirs?: RootDirs, inStart = false): string {
  const q = (argv: string[]) => argv.map(execArg).join(' ');
  return [
    '# Written by berth: the root filesystem of this machine is an overlay of the image\'s',
    '# layer snapshots (lowers, idmapped to the machine\'s UID range) and its own upper dir.',
    ...(inStart
      ? ['# ExecStart= (berth-helper nspawn-start --mount) mounts it just before nspawn runs.']
      : dirs && dirs.paths.length > 0 ? ['# --mkdir: directories nspawn and the volumes need, made inside the root as its owner.'] : []),
    '[Unit]',
    `RequiresMountsFor=${execArg(storeDir)} ${execArg(p.upper)}`,
    '',
    '[Service]',
    ...(inStart ? [] : [`ExecStartPre=${q([p.helper, ...mountArgs(p, dirs)])}`]),
    `ExecStopPost=${q(umountArgv(p.helper, p.target))}`,
    '',
  ].join('\n');
}

/**
 * nspawn-start's --mount words for this root (mountArgs without the word "mount"), each
 * checked as execArg checks the ExecStartPre= line's: none is quoted into the unit file.
 */
export function startMountArgs(p: RootfsPlan, dirs?: RootDirs): string[] {
  return mountArgs(p, dirs).slice(1).map(execArg);
}

/**
 * True when something is mounted on path in berth's mount namespace (from
 * /proc/self/mountinfo, whose mount points are canonical and octal-escaped). Saves a
 * helper start per call on the `run --rm` path.
 */
export async function isMounted(path: string): Promise<boolean> {
  const real = await realpath(path).catch(() => undefined);
  if (real === undefined) return false;
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  // 100 running machines make mountinfo ~1000 lines: look for the path (escaped as the
  // kernel writes it) first, and split lines only when it occurs at all.
  const esc = real.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  if (!text.includes(` ${esc} `)) return false;
  return text.split('\n').some((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === real);
}

/** Directories to make inside the root after it is mounted, new ones owned by owner. */
export interface RootDirs {
  owner: { uid: number; gid: number };
  paths: readonly string[];
}

/**
 * `berth-helper mount`'s arguments (after the helper path): mountArgv's options, then one
 * --mkdir per directory (resolved in the root, as berth-helper mkdirs would), then the
 * layers. Pure.
 */
export function mountArgs(p: RootfsPlan, dirs?: RootDirs): string[] {
  const argv = mountArgv(p).slice(1);
  if (dirs && dirs.paths.length > 0) argv.splice(argv.length - p.layers.length, 0, ...mountMkdirOptions(dirs.owner, dirs.paths));
  return argv;
}

/**
 * Mounts the rootfs (idempotent). `mkdirs`: directories to make inside it afterwards, in
 * the same helper run: one process fewer per create.
 */
export async function mountRootfs(p: RootfsPlan, mkdirs?: RootDirs): Promise<void> {
  const dirs = mkdirs && mkdirs.paths.length > 0 ? mkdirs : undefined;
  if (await isMounted(p.target)) {
    if (dirs) await mkdirsInRoot(p.target, dirs.owner, dirs.paths);
    return;
  }
  await runHelper(mountArgs(p, dirs), { context: `mounting the root filesystem on ${p.target}` });
}

/** Unmounts the rootfs (every stacked mount on it). Idempotent. */
export async function umountRootfs(helper: string, target: string): Promise<void> {
  if (!(await isMounted(target))) return;
  await runHelper(umountArgv(helper, target).slice(1), { context: `unmounting ${target}` });
}

export function planFor(paths: MachinePaths, helper: string, layers: string[], idmap: UidRange | undefined): RootfsPlan {
  return { helper, layers, target: paths.rootDir, upper: paths.upper, work: paths.work, idmap };
}
