/**
 * @module runtime/bwrap/host
 * What the host allows a user: read once before a container is created, each refusal a
 * FAILED_PRECONDITION (or PERMISSION_DENIED) whose message says what is missing and how
 * to fix it, with `details.reason` as the stable machine-readable cause:
 *   no-subid-range, newuidmap-missing, userns-disabled, store-filesystem, tun-unusable.
 * Reads go through `root` (default "/") so tests can present a host that lacks things.
 */
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../../base/errors.ts';
import { run } from '../../base/exec.ts';
import { parseSubIds, pickSubIdRange } from './subid.ts';
import type { IdRange } from './types.ts';

export interface HostFacts {
  subuid: IdRange;
  subgid: IdRange;
  unprivilegedPortStart: number;
  delegatedControllers: string[];
  cgroupPath: string;
}

export interface ProbeOptions {
  user: { name: string; uid: number; gid: number };
  /** Prefix for /etc, /proc and /sys reads (tests). */
  root?: string;
}

const fail = (reason: string, message: string, details: Record<string, unknown> = {}): never => {
  throw new BerthError('FAILED_PRECONDITION', message, { details: { reason, ...details } });
};

async function readOr(path: string, fallback: string | undefined): Promise<string | undefined> {
  return readFile(path, 'utf8').catch(() => fallback);
}

/** newuidmap/newgidmap must exist: without them only the user's own ID can be mapped. */
async function checkIdMapTool(root: string, tool: string): Promise<void> {
  for (const dir of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    const p = join(root, dir, tool);
    const st = await stat(p).catch(() => undefined);
    // Setuid root (Debian) or file capabilities (Fedora): unshare reports a broken one.
    if (st?.isFile()) return;
  }
  fail('newuidmap-missing', `${tool} is not installed; it maps the subordinate IDs of /etc/subuid and /etc/subgid into a user's containers (Debian: apt-get install uidmap)`, { tool });
}

/** The distribution switches that turn unprivileged user namespaces off. */
async function checkUserns(root: string): Promise<void> {
  const proc = (p: string) => join(root, 'proc/sys', p);
  if ((await readOr(proc('kernel/unprivileged_userns_clone'), '1'))!.trim() === '0') {
    fail('userns-disabled', 'unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0); a user container needs them: sysctl -w kernel.unprivileged_userns_clone=1', { sysctl: 'kernel.unprivileged_userns_clone' });
  }
  if ((await readOr(proc('user/max_user_namespaces'), '1'))!.trim() === '0') {
    fail('userns-disabled', 'user namespaces are disabled (sysctl user.max_user_namespaces=0); a user container needs them', { sysctl: 'user.max_user_namespaces' });
  }
  if ((await readOr(proc('kernel/apparmor_restrict_unprivileged_userns'), '0'))!.trim() === '1') {
    fail('userns-disabled', 'AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1); allow them for bwrap and unshare with an AppArmor profile ("userns,"), or set the sysctl to 0', { sysctl: 'kernel.apparmor_restrict_unprivileged_userns' });
  }
}

/**
 * The cgroup v2 directory of the user's manager (user@UID.service) and the controllers
 * delegated there. Hybrid hosts mount cgroup2 at /sys/fs/cgroup/unified.
 */
async function delegated(root: string, uid: number): Promise<{ controllers: string[]; path: string }> {
  const rel = `user.slice/user-${uid}.slice/user@${uid}.service/cgroup.controllers`;
  for (const base of ['sys/fs/cgroup', 'sys/fs/cgroup/unified']) {
    const p = join(root, base, rel);
    const text = await readOr(p, undefined);
    if (text !== undefined) return { controllers: text.trim().split(/\s+/).filter(Boolean), path: join('/', base, rel) };
  }
  return { controllers: [], path: join('/sys/fs/cgroup', rel) };
}

export async function probeHost(opts: ProbeOptions): Promise<HostFacts> {
  const root = opts.root ?? '/';
  const sub = async (file: string) => pickSubIdRange(parseSubIds((await readOr(join(root, file), ''))!), opts.user, { file, minCount: 1 });
  // Independent reads, in parallel (each is a thread-pool round trip); the refusals keep
  // their order: the first failing check in this list is the one reported.
  const [subuid, subgid, uidmap, gidmap, userns, portText, cg] = await Promise.allSettled([
    sub('/etc/subuid'), sub('/etc/subgid'), checkIdMapTool(root, 'newuidmap'), checkIdMapTool(root, 'newgidmap'), checkUserns(root),
    readOr(join(root, 'proc/sys/net/ipv4/ip_unprivileged_port_start'), '1024'), delegated(root, opts.user.uid),
  ]);
  for (const r of [subuid, subgid, uidmap, gidmap, userns, portText, cg]) if (r.status === 'rejected') throw r.reason;
  const got = <T,>(r: PromiseSettledResult<T>): T => (r as PromiseFulfilledResult<T>).value;
  const port = Number(got(portText)!.trim());
  return { subuid: got(subuid), subgid: got(subgid), unprivilegedPortStart: Number.isInteger(port) ? port : 1024, delegatedControllers: got(cg).controllers, cgroupPath: got(cg).path };
}

/** pasta needs /dev/net/tun, opened as root of the user namespace: it must be world rw (udev's 0666). */
export async function checkTun(root = '/'): Promise<void> {
  const p = join(root, 'dev/net/tun');
  const st = await stat(p).catch(() => undefined);
  if (!st || (st.mode & 0o006) !== 0o006) {
    fail('tun-unusable', `${p} ${st ? `has mode ${(st.mode & 0o777).toString(8)}` : 'does not exist'}; pasta needs it readable and writable by every user (0666, as udev sets it) for the private network; use --network=none or fix the device node`, { path: p });
  }
}

/**
 * Proves the store's filesystem can hold what dir snapshots need: an overlay mounted inside
 * an unprivileged user namespace with its upper and work dirs there (user.* xattrs, d_type,
 * no overlayfs-on-overlayfs). A real mount, not a guess from the filesystem's name.
 */
export async function probeStoreFilesystem(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await access(dir, constants.W_OK).catch((e) => {
    throw new BerthError('PERMISSION_DENIED', `store ${dir} is not writable: ${(e as Error).message}`, { cause: e });
  });
  const t = await mkdtemp(join(dir, '.probe-'));
  try {
    for (const d of ['l', 'u', 'w', 'm']) await mkdir(join(t, d));
    const r = await run(['unshare', '--user', '--map-root-user', '--mount', '--', 'mount', '-t', 'overlay', '-o',
      `lowerdir=${t}/l,upperdir=${t}/u,workdir=${t}/w,userxattr`, 'berth-probe', `${t}/m`], { reject: false, timeoutMs: 10_000 });
    if (r.exitCode !== 0) {
      const fsType = (await run(['stat', '-f', '-c', '%T', dir], { reject: false })).stdout.trim() || 'unknown';
      if (/^unshare:/m.test(r.stderr)) {
        fail('userns-disabled', `cannot create a user namespace: ${r.stderr.trim()}`);
      }
      fail('store-filesystem', `the store ${dir} is on a filesystem (${fsType}) where a user cannot mount an overlay (${r.stderr.trim().split('\n').pop() ?? ''}); user containers need ext4, xfs, btrfs or tmpfs (kernel >= 6.6) for their layers: set XDG_DATA_HOME to a directory there`, { fsType, path: dir });
    }
  } finally {
    await rm(t, { recursive: true, force: true });
  }
}
