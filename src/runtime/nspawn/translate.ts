/**
 * @module runtime/nspawn/translate
 * Pure translation ContainerSpec → `/etc/systemd/nspawn/NAME.nspawn` (a UnitFile). No I/O.
 *
 * Facts this relies on (systemd 252, verified with systemd-nspawn on a busybox rootfs):
 * - Parameters= is ignored unless the file also sets Boot= or ProcessTwo=, so Boot= is
 *   always written.
 * - systemd-nspawn@.service runs `--boot --network-veth -U --settings=override`; with
 *   `override` every setting the file states beats the command line (Boot=no beats --boot,
 *   PrivateUsers=no beats -U, Private=/VirtualEthernet= beat --network-veth). So the stock
 *   ExecStart is kept and this file states Boot=, PrivateUsers=, Private=, VirtualEthernet=
 *   explicitly — `systemctl start`, `machinectl start` and berth all read the same settings.
 * - Parameters=/Environment= have no escapes, no specifiers, no `$` expansion (see
 *   unit/quote): values are single-quoted words; newlines are refused.
 * - nspawn's own stub init (ProcessTwo=yes) ignores SIGTERM; on SIGRTMIN+3 it sends the
 *   payload SIGTERM+SIGHUP+SIGCONT and nspawn exits 0, not with the payload's status. A
 *   forwarding init (catatonit, bound read-only from the host) gives Docker semantics: the
 *   exact StopSignal reaches the command and its exit status becomes nspawn's.
 * - Sections named `X-…` are ignored silently by nspawn (unknown ones are warned about), so
 *   berth's metadata lives in `[X-Berth]`.
 */
import { BerthError } from '../../base/errors.ts';
import { volumeStage } from './translate-volumes.ts';
import type { ContainerSpec, MountSpec } from '../../container/spec.ts';
import { validateMachineName } from '../../container/names.ts';
import { UnitFile } from '../../unit/unit-file.ts';
import type { RuntimeNetwork } from '../../network/index.ts';
import { assertSafeValue, escapeNspawnPath, quoteNspawnWord } from '../../unit/quote.ts';
import { checkAbsPath, checkHostname, checkMountOptions, checkSignal, nspawnUser, setuserSpec } from './translate-values.ts';
import { SECCOMP_FILTER_TARGET, SECCOMP_INIT_TARGET, type SeccompStart } from './seccomp-start.ts';

export interface NspawnTranslateOptions {
  /**
   * Host path of a static, signal-forwarding init (e.g. /usr/bin/catatonit). It is bound
   * read-only to INIT_TARGET and runs as PID 1 for Boot=no. Without it nspawn's stub init
   * is used (ProcessTwo=yes, KillSignal=SIGRTMIN+3; the image's StopSignal cannot be honoured).
   */
  initHostPath?: string;
  /**
   * Host path of berth-helper (native/*.c, static; argv[0] "setuser" selects its setuser
   * command), bound read-only to SETUSER_TARGET. With it, `-u USER[:GROUP]` and the image's User work with Docker's
   * meaning (names from the container's own /etc/passwd, numeric ids, groups); without
   * it, only a plain user name is possible, through nspawn's User= (needs getent inside).
   */
  setuserHostPath?: string;
  /**
   * For network mode `zone`: what network/ prepared (a namespace nspawn runs in, files to
   * show inside). Required for that mode.
   */
  network?: RuntimeNetwork;
  /**
   * With the forwarding init: start through berth's cached seccomp filter (seccomp.ts).
   * PID 1 is berth-helper as seccomp-init (bound from helper), which loads the machine's
   * filter file when nspawn-start chose the cache, then execs the init.
   */
  seccomp?: Pick<SeccompStart, 'helper' | 'filter'>;
}

/** Where berth-helper appears inside the container, as its setuser command. */
export const SETUSER_TARGET = '/run/host/berth/setuser';

/** Where the forwarding init appears inside the container (a tmpfs nspawn owns). */
export const INIT_TARGET = '/run/host/berth/init';

/**
 * Reads Parameters= words back (ps, inspect, exec): berth's prefixes stripped, seccomp-init,
 * the forwarding init and its `--`, and the setuser switch (whose argument is the user). Pure.
 */
export function payloadOf(words: readonly string[]): { command: string[]; setuser?: string } {
  let w = [...words];
  if (w[0] === SECCOMP_INIT_TARGET && w[1] === INIT_TARGET) w = w.slice(1);
  if (w[0] === INIT_TARGET && w[1] === '--') w = w.slice(2);
  if (w[0] === SETUSER_TARGET && w[2] === '--') return { command: w.slice(3), setuser: w[1] };
  return { command: w };
}

/** The settings file's path for a machine name. */
export function nspawnFilePath(name: string): string {
  return `/etc/systemd/nspawn/${validateMachineName(name)}.nspawn`;
}

const yn = (b: boolean): string => (b ? 'yes' : 'no');

export function toNspawnFile(spec: ContainerSpec, opts: NspawnTranslateOptions = {}): UnitFile {
  const name = validateMachineName(spec.name);
  const u = new UnitFile(nspawnFilePath(name));
  u.comment(`Container ${name}, written by berth from image ${oneLine(spec.image.ref)}.`);
  u.comment('Hand edits are kept and respected; [X-Berth] is berth\'s metadata (nspawn ignores it).');
  writeExec(u, spec, opts);
  writeFiles(u, spec, opts);
  writeNetwork(u, spec, opts.network);
  writeMetadata(u, spec);
  return u;
}

/** The USER[:GROUP] berth-helper setuser switches to, when it is used (non-root user, helper present). */
function switchUser(spec: ContainerSpec, opts: NspawnTranslateOptions): string | undefined {
  if (spec.boot || opts.initHostPath === undefined || opts.setuserHostPath === undefined) return undefined;
  return setuserSpec('user', spec.process.user);
}

function writeExec(u: UnitFile, spec: ContainerSpec, opts: NspawnTranslateOptions): void {
  const args = spec.process.args;
  args.forEach((a, i) => assertSafeValue(`argument ${i}`, a));
  u.set('Exec', 'Boot', yn(spec.boot));
  let kill: string | undefined;
  if (spec.boot) {
    u.set('Exec', 'ProcessTwo', 'no');
    if (args.length > 0) u.set('Exec', 'Parameters', words(args, 'argument'));
    kill = spec.stopSignal === undefined ? undefined : checkSignal('stop signal', spec.stopSignal);
  } else {
    if (args.length === 0) throw new BerthError('INVALID_ARGUMENT', 'image has no command: give one after the image name, or use --entrypoint or --boot');
    if (opts.initHostPath !== undefined) {
      u.set('Exec', 'ProcessTwo', 'no');
      const setuser = switchUser(spec, opts);
      const prefix = setuser === undefined ? '' : `${quoteNspawnWord(SETUSER_TARGET)} ${quoteNspawnWord(setuser)} -- `;
      const first = opts.seccomp === undefined ? '' : `${quoteNspawnWord(SECCOMP_INIT_TARGET)} `;
      u.set('Exec', 'Parameters', `${first}${quoteNspawnWord(INIT_TARGET)} -- ${prefix}${words(args, 'argument')}`);
      kill = checkSignal('stop signal', spec.stopSignal ?? 'SIGTERM');
    } else {
      u.set('Exec', 'ProcessTwo', 'yes');
      u.set('Exec', 'Parameters', words(args, 'argument'));
      kill = 'SIGRTMIN+3';
    }
  }
  for (const kv of dedupeEnv(spec.process.env)) u.add('Exec', 'Environment', kv);
  u.set('Exec', 'WorkingDirectory', checkAbsPath('working directory', spec.process.cwd || '/'));
  if (switchUser(spec, opts) === undefined) {
    const user = nspawnUser('user', spec.process.user);
    if (user !== undefined) u.set('Exec', 'User', user);
  }
  if (kill !== undefined) u.set('Exec', 'KillSignal', kill);
  u.set('Exec', 'PrivateUsers', spec.userns === 'private' ? 'pick' : 'no');
  u.set('Exec', 'NotifyReady', 'no');
  if (spec.hostname !== undefined) u.set('Exec', 'Hostname', checkHostname('hostname', spec.hostname));
}

function words(args: readonly string[], field: string): string {
  return args.map((a, i) => quoteNspawnWord(a, `${field} ${i}`)).join(' ');
}

/** KEY=VALUE list → quoted words, later duplicates win (Docker), order of first appearance. */
function dedupeEnv(env: readonly string[]): string[] {
  const m = new Map<string, string>();
  for (const kv of env) {
    const eq = kv.indexOf('=');
    const k = eq < 0 ? kv : kv.slice(0, eq);
    if (k === '' || eq < 0) throw new BerthError('INVALID_ARGUMENT', `environment entry "${oneLine(kv)}" is not KEY=VALUE`);
    assertSafeValue(`env ${k}`, kv);
    m.set(k, kv);
  }
  return [...m.values()].map((kv) => quoteNspawnWord(kv, `env ${kv.slice(0, kv.indexOf('='))}`));
}

function writeFiles(u: UnitFile, spec: ContainerSpec, opts: NspawnTranslateOptions): void {
  u.set('Files', 'ReadOnly', yn(spec.readOnlyRoot));
  // Never chown the image: idmapped mounts keep start time independent of image size.
  if (spec.userns === 'private') u.set('Files', 'PrivateUsersOwnership', 'map');
  if (!spec.boot && opts.initHostPath !== undefined) {
    const src = checkAbsPath('init', opts.initHostPath);
    u.add('Files', 'BindReadOnly', `${escapeNspawnPath(src)}:${escapeNspawnPath(INIT_TARGET)}`);
    if (opts.seccomp !== undefined) {
      u.add('Files', 'BindReadOnly', `${escapeNspawnPath(checkAbsPath('seccomp helper', opts.seccomp.helper))}:${SECCOMP_INIT_TARGET}`);
      u.add('Files', 'BindReadOnly', `${escapeNspawnPath(checkAbsPath('seccomp filter', opts.seccomp.filter))}:${SECCOMP_FILTER_TARGET}`);
    }
    if (switchUser(spec, opts) !== undefined) {
      const helper = checkAbsPath('setuser helper', opts.setuserHostPath!);
      u.add('Files', 'BindReadOnly', `${escapeNspawnPath(helper)}:${escapeNspawnPath(SETUSER_TARGET)}`);
    }
  }
  spec.mounts.forEach((m, i) => writeMount(u, spec.name, m, i, spec.userns === 'private'));
}

function writeMount(u: UnitFile, name: string, m: MountSpec, i: number, privateUsers: boolean): void {
  const target = checkAbsPath(`mount ${i} target`, m.target);
  if (m.type === 'tmpfs') {
    const o = m.options === undefined || m.options === '' ? '' : `:${checkMountOptions(`tmpfs ${target}`, m.options)}`;
    u.add('Files', 'TemporaryFileSystem', `${escapeNspawnPath(target)}${o}`);
    return;
  }
  // No idmap unless asked for (Podman's meaning): with a private user range, files the
  // container creates on the volume belong to its mapped host UIDs, and container root is
  // not host root there. `:idmap` maps the range onto the source's owners instead.
  if (m.idmap && !privateUsers) {
    throw new BerthError('INVALID_ARGUMENT', `volume ${target}: idmap needs a user namespace (it does nothing with --userns=host)`);
  }
  checkAbsPath(`bind source for ${target}`, m.source);
  // nspawn binds the nosuid,nodev staging mount of the source (translate-volumes.ts)
  const value = `${escapeNspawnPath(volumeStage(name, i))}:${escapeNspawnPath(target)}${m.idmap ? ':idmap' : ''}`;
  u.add('Files', m.readonly ? 'BindReadOnly' : 'Bind', value);
}

/**
 * nspawn words for the neutral network modes. `zone`: nspawn runs inside the namespace
 * network/ prepared (the unit's ExecStart enters it, see translate-dropins), so for nspawn
 * it is the "host" network: Private=no. The machine's resolv.conf and hosts are berth's
 * files, bound read-only (ResolvConf=off, or nspawn would copy the host's).
 */
function writeNetwork(u: UnitFile, spec: ContainerSpec, rn: RuntimeNetwork | undefined): void {
  const n = spec.network;
  switch (n.mode) {
    case 'host':
      u.set('Network', 'Private', 'no').set('Network', 'VirtualEthernet', 'no');
      break;
    case 'private':
      u.set('Network', 'Private', 'yes').set('Network', 'VirtualEthernet', 'no');
      break;
    case 'link':
      u.set('Network', 'Private', 'yes').set('Network', 'VirtualEthernet', 'yes');
      break;
    case 'zone':
      if (rn === undefined) throw new BerthError('INTERNAL', 'network zone without a prepared network namespace');
      u.set('Exec', 'ResolvConf', 'off');
      for (const f of rn.files) u.add('Files', 'BindReadOnly', `${escapeNspawnPath(checkAbsPath('network file', f.source))}:${escapeNspawnPath(checkAbsPath('network file', f.target))}`);
      u.set('Network', 'Private', 'no').set('Network', 'VirtualEthernet', 'no');
      break;
  }
}

/** Metadata for `berth inspect`; values are .nspawn words so parseNspawnWords reads them back. */
function writeMetadata(u: UnitFile, spec: ContainerSpec): void {
  const s = 'X-Berth';
  u.set(s, 'Image', quoteNspawnWord(spec.image.ref, 'image reference'));
  u.set(s, 'Digest', spec.image.digest);
  u.set(s, 'ImageId', spec.image.id);
  for (const c of spec.image.chainIds) u.add(s, 'ChainId', c);
  for (const [k, v] of Object.entries(spec.labels)) u.add(s, 'Label', quoteNspawnWord(`${k}=${v}`, `label ${k}`));
}

function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, '?');
}
