/**
 * @module runtime/bwrap/translate-argv
 * Pure translation ContainerSpec + BwrapOptions → the unit's ExecStart argv:
 *
 *   unshare --user --map-user=0 --map-group=0 --map-users=SUB,1,N --map-groups=SUB,1,N
 *           --mount --propagation private --
 *   /bin/sh LAUNCHER LOWERS UPPER WORK MERGED CHECK NET NETNS TCP UDP --
 *   bwrap --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try [--unshare-net]
 *         --bind MERGED / --proc /proc --dev /dev … --cap-drop ALL --cap-add … -- ARGS
 *
 * Container root is the user (0 → uid), container IDs 1…N are the subordinate range (as
 * rootless Podman). bwrap runs as root of that user namespace without --unshare-user, so
 * every mapped ID stays usable; it always sets no_new_privs and keeps only
 * PODMAN_DEFAULT_CAPS (effective, permitted, inheritable, ambient). Network modes are a
 * table (NETWORK_MODES), not branches on names.
 */
import { BerthError } from '../../base/errors.ts';
import type { ContainerSpec, MountSpec } from '../../container/spec.ts';
import { validateMachineName } from '../../container/names.ts';
import { assertSafeValue } from '../../unit/quote.ts';
import { toPastaPorts } from './pasta.ts';
import { DEFAULT_BINARIES, type BwrapOptions, type IdRange } from './types.ts';

/** containers.conf's default_capabilities (Podman 4/5, rootful and rootless alike). */
export const PODMAN_DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_NET_BIND_SERVICE',
  'CAP_SETFCAP', 'CAP_SETGID', 'CAP_SETPCAP', 'CAP_SETUID', 'CAP_SYS_CHROOT',
] as const;

/** Where the berth-setuser helper appears inside. */
export const SETUSER_TARGET = '/run/host/berth/setuser';

type NetKind = 'none' | 'host' | 'pasta';

/** spec.network.mode → what the sandbox does. 'zone' is an nspawn bridge: no user equivalent. */
const NETWORK_MODES: Readonly<Record<ContainerSpec['network']['mode'], NetKind | undefined>> = {
  private: 'none', // --network=none: loopback only
  link: 'pasta', // the default private network: own netns, outbound through pasta
  host: 'host',
  zone: undefined,
};

const NET_BWRAP: Readonly<Record<NetKind, string[]>> = { none: ['--unshare-net'], host: [], pasta: [] };

const invalid = (field: string, msg: string): never => {
  throw new BerthError('INVALID_ARGUMENT', `${field}: ${msg}`, { details: { field } });
};
const unsupported = (field: string, msg: string): never => {
  throw new BerthError('UNSUPPORTED', `${field}: ${msg}`, { details: { field } });
};

/** Absolute, normalized, no `.`/`..`, and none of the characters that separate overlay options or launcher lists. */
function checkPath(field: string, p: string): string {
  assertSafeValue(field, p, { allowTab: false });
  if (!p.startsWith('/')) invalid(field, `path "${p}" must be absolute`);
  if (p.split('/').some((c) => c === '.' || c === '..')) invalid(field, `path "${p}" must not contain "." or ".." components`);
  if (/[:,\\\s]/.test(p)) invalid(field, `path "${p}" must not contain ":", ",", "\\" or whitespace`);
  const norm = p.replace(/\/+/g, '/');
  return norm.length > 1 ? norm.replace(/\/$/, '') : norm;
}

function checkRange(field: string, r: IdRange): IdRange {
  if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.count) || r.start < 1 || r.count < 1 || r.start + r.count > 2 ** 32 - 1) {
    invalid(field, `${r.start}:${r.count} is not a valid ID range`);
  }
  return r;
}

function checkHostname(h: string): string {
  if (h.length === 0 || h.length > 64 || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(h)) invalid('hostname', `"${h}" is not a valid hostname`);
  return h;
}

/** USER[:GROUP] for berth-setuser, or undefined for root. */
function setuserSpec(user: string | undefined): string | undefined {
  if (user === undefined || user === '' || ['root', '0', '0:0', 'root:root', 'root:0', '0:root'].includes(user)) return undefined;
  const parts = user.split(':');
  if (parts.length > 2 || parts.some((p) => !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/.test(p))) invalid('user', `"${user}" is not USER[:GROUP] (names or numeric ids)`);
  return user;
}

function tmpfsArgs(m: Extract<MountSpec, { type: 'tmpfs' }>, target: string): string[] {
  const out: string[] = [];
  for (const o of (m.options ?? '').split(',').filter(Boolean)) {
    const [k, v = ''] = o.split('=', 2);
    if (k === 'size' && /^\d{1,15}[kmg]?$/i.test(v)) {
      const mult = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[v.slice(-1).toLowerCase()] ?? 1;
      out.push('--size', String(Number.parseInt(v, 10) * mult));
    } else if (k === 'mode' && /^[0-7]{3,4}$/.test(v)) {
      out.push('--perms', v.padStart(4, '0'));
    } else {
      unsupported(`tmpfs ${target}`, `option "${o}" (bwrap supports size= and mode=)`);
    }
  }
  return [...out, '--tmpfs', target];
}

export interface SandboxCommand {
  /** The whole ExecStart= argv. */
  execStart: string[];
  /** The bwrap part of it (for tests and `berth inspect`). */
  bwrap: string[];
  net: NetKind;
}

export function toSandboxCommand(spec: ContainerSpec, opts: BwrapOptions): SandboxCommand {
  validateMachineName(spec.name);
  const bin = { ...DEFAULT_BINARIES, ...opts.binaries };
  if (spec.boot) unsupported('boot', 'a user container runs one command, not an init system (no --boot with bwrap)');
  if (spec.userns === 'host') unsupported('userns', 'a user container always has its own user namespace (no --userns=host)');
  const net = NETWORK_MODES[spec.network.mode] ?? unsupported('network', `mode "${spec.network.mode}" is not available to a user's container (use none, host or the default private network)`);
  const publish = opts.publish ?? [];
  if (publish.length > 0 && net !== 'pasta') invalid('publish', `ports can be published only with the private network (network mode is ${spec.network.mode})`);
  const ports = toPastaPorts(publish, { unprivilegedPortStart: opts.unprivilegedPortStart });
  const subuid = checkRange('subuid range', opts.subuid);
  const subgid = checkRange('subgid range', opts.subgid);
  if (spec.process.args.length === 0) invalid('command', 'no command to run');
  spec.process.args.forEach((a, i) => assertSafeValue(`argument ${i}`, a, { allowNewline: true }));

  const p = opts.paths;
  if (p.lowerDirs.length !== spec.image.chainIds.length || p.lowerDirs.length === 0) {
    invalid('layers', `${p.lowerDirs.length} layer directories for ${spec.image.chainIds.length} layers`);
  }
  const lowers = [...p.lowerDirs].reverse().map((d, i) => checkPath(`layer directory ${i}`, d)).join(':');
  const [upper, work, merged, netns, launcher] = (['upper', 'work', 'merged', 'netns', 'launcher'] as const).map((k) => checkPath(`${k} path`, p[k]));

  // Container paths bwrap mounts onto; the launcher refuses symlinks on their way.
  const mountTargets: string[] = ['/proc', '/dev'];
  const b: string[] = [bin.bwrap, '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', ...NET_BWRAP[net], '--new-session'];
  b.push('--bind', merged!, '/', '--proc', '/proc', '--dev', '/dev');
  if (net === 'pasta') {
    // The host's resolver list; pasta carries the traffic (a 127.0.0.x resolver is not reachable from inside).
    b.push('--ro-bind-try', '/etc/resolv.conf', '/etc/resolv.conf');
    mountTargets.push('/etc/resolv.conf');
  }
  for (const [i, m] of spec.mounts.entries()) {
    const target = checkPath(`mount ${i} target`, m.target);
    if (target === '/') invalid(`mount ${i} target`, 'cannot mount over /');
    if (m.type === 'bind') {
      b.push(m.readonly ? '--ro-bind' : '--bind', checkPath(`mount ${i} source`, m.source), target);
    } else {
      b.push(...tmpfsArgs(m, target));
    }
    mountTargets.push(target);
  }
  const setuser = setuserSpec(spec.process.user);
  if (setuser !== undefined) {
    if (opts.setuserHostPath === undefined) unsupported('user', `-u ${setuser} needs the berth-setuser helper (not built)`);
    b.push('--ro-bind', checkPath('setuser helper', opts.setuserHostPath!), SETUSER_TARGET);
    mountTargets.push(SETUSER_TARGET);
  }
  if (spec.readOnlyRoot) b.push('--remount-ro', '/');
  b.push('--hostname', checkHostname(spec.hostname ?? spec.name));
  b.push('--chdir', checkPath('working directory', spec.process.cwd || '/'));
  b.push('--clearenv');
  for (const kv of spec.process.env) {
    const i = kv.indexOf('=');
    const k = i > 0 ? kv.slice(0, i) : '';
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k)) invalid('env', `"${kv.split('=')[0]}" is not a valid variable name`);
    assertSafeValue(`env ${k}`, kv, { allowNewline: true });
    b.push('--setenv', k, kv.slice(i + 1));
  }
  b.push('--cap-drop', 'ALL');
  for (const c of PODMAN_DEFAULT_CAPS) b.push('--cap-add', c);
  b.push('--', ...(setuser === undefined ? [] : [SETUSER_TARGET, setuser, '--']), ...spec.process.args);

  const execStart = [
    bin.unshare, '--user', '--map-user=0', '--map-group=0',
    `--map-users=${subuid.start},1,${subuid.count}`, `--map-groups=${subgid.start},1,${subgid.count}`,
    '--mount', '--propagation', 'private', '--',
    bin.sh, launcher!, lowers, upper!, work!, merged!, mountTargets.map((t) => t.slice(1)).join(':'),
    net, net === 'pasta' ? netns! : '-', ports.tcp, ports.udp, '--', ...b,
  ];
  return { execStart, bwrap: b, net };
}
