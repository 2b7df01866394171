/**
 * @module runtime/nspawn/translate-dropins
 * Pure translation ContainerSpec → drop-ins for
 * `/etc/systemd/system/systemd-nspawn@NAME.service.d/`. One file per concern so that
 * `berth update` (or an admin) can replace one without touching the others:
 * - 50-berth-unit.conf       [Unit] Description=, Requires=/After= the rootfs mount unit
 * - 50-berth-resources.conf  [Service] MemoryMax=, CPUQuota=, TasksMax=, Slice=
 * - 50-berth-lifecycle.conf  [Service] Restart=, RestartSec=, TimeoutStopSec=; [Unit] StartLimit*
 * - 20-berth-volumes.conf    [Service] ExecStartPre=/ExecStopPost= staging the volumes (translate-volumes.ts)
 * - 40-berth-start.conf      [Service] ExecStart= through `berth-helper nspawn-start` (the
 *                            cached seccomp filter, seccomp.ts); not for a network zone,
 *                            whose 60-berth-network.conf carries the same start
 * - 60-berth-network.conf    (network zone only) [Unit] Requires=/After= the zone's unit;
 *                            [Service] ExecStartPre= network setup, ExecStart= entering the
 *                            machine's namespace, ExecStopPost= teardown
 *
 * ExecStart= keeps the template's words (only prefixed by nspawn-start and, for a zone, the namespace entry): its `--settings=override` lets every setting in
 * NAME.nspawn beat its `--boot --network-veth -U` (verified on systemd 252), and
 * toNspawnFile states those settings explicitly. The stock RequiresMountsFor=
 * /var/lib/machines/%i already orders the service after a mount unit at that path; the
 * explicit Requires=/After= is for a mount unit elsewhere (and documents the dependency).
 */
import type { ContainerSpec } from '../../container/spec.ts';
import { validateMachineName } from '../../container/names.ts';
import { UnitFile } from '../../unit/unit-file.ts';
import { escapeSpecifiers, quoteExecArg } from '../../unit/quote.ts';
import type { RuntimeNetwork } from '../../network/index.ts';
import { BerthError } from '../../base/errors.ts';
import { checkUnitName } from './translate-values.ts';
import { VOLUMES_DROPIN, volumesDropIn, type VolumeKind } from './translate-volumes.ts';
import { startArgv, type SeccompStart } from './seccomp-start.ts';

export interface DropInOptions {
  /** Mount unit that provides /var/lib/machines/NAME (e.g. var-lib-machines-web.mount). */
  rootfsMountUnit?: string;
  /** For network mode `zone`: what network/ prepared. */
  network?: RuntimeNetwork;
  /** Kind of each spec.mounts[i] source (a file needs a file as staging point); default dir. */
  volumeKinds?: readonly (VolumeKind | undefined)[];
  /** Start through nspawn-start (when the .nspawn file uses seccomp-init). */
  start?: SeccompStart;
}

/**
 * systemd 252's systemd-nspawn@.service ExecStart=, minus --network-veth (the .nspawn
 * file decides networking). A zone machine's ExecStart= is this, run through the
 * network's `enter` prefix (`berth-helper netns-exec NETNS CONFIG --`, which configures
 * the namespace and execs nspawn), so nspawn and the container live in the namespace berth prepared:
 * nspawn's own --network-namespace-path= cannot be used with -U (nspawn joins it after
 * entering the user namespace: "Failed to join network namespace: Operation not permitted").
 */
export const NSPAWN_EXEC_START = ['systemd-nspawn', '--quiet', '--keep-unit', '--boot', '--link-journal=try-guest', '-U', '--settings=override'];

/** The ExecStart= words: [namespace entry] [nspawn-start FILTER --] systemd-nspawn ... --machine=NAME. Pure. */
export function execStartArgv(name: string, enter: readonly string[], start: SeccompStart | undefined): string[] {
  const nspawn = start === undefined ? NSPAWN_EXEC_START : [...startArgv(start), ...NSPAWN_EXEC_START.slice(1)];
  return [...enter, ...nspawn, `--machine=${validateMachineName(name)}`];
}

/** 40-berth-start.conf: the template's start, through nspawn-start. */
export function startDropIn(name: string, start: SeccompStart): UnitFile {
  const u = new UnitFile(`${dropInDir(name)}/40-berth-start.conf`);
  u.comment(`Written by berth for container ${validateMachineName(name)}: nspawn with berth's cached seccomp filter when it applies (same programs, compiled once).`);
  u.add('Service', 'ExecStart', '');
  u.add('Service', 'ExecStart', execLine(execStartArgv(name, [], start)));
  // The journal names nspawn, as for the stock unit (not the wrapper that execs it).
  u.set('Service', 'SyslogIdentifier', 'systemd-nspawn');
  return u;
}

/** 60-berth-network.conf: the machine's network lives exactly as long as its unit runs. */
export function networkDropIn(name: string, rn: RuntimeNetwork, start?: SeccompStart): UnitFile {
  const u = new UnitFile(`${dropInDir(name)}/60-berth-network.conf`);
  u.comment(`Written by berth for container ${validateMachineName(name)}: its network namespace, address and published ports.`);
  for (const r of rn.requires) {
    const unit = checkUnitName('zone unit', r, '.service');
    u.add('Unit', 'Requires', unit).add('Unit', 'After', unit);
  }
  for (const argv of rn.setup) u.add('Service', 'ExecStartPre', execLine(argv));
  u.add('Service', 'ExecStart', '');
  u.add('Service', 'ExecStart', execLine(execStartArgv(name, rn.enter, start)));
  u.set('Service', 'SyslogIdentifier', 'systemd-nspawn');
  for (const argv of rn.teardown) u.add('Service', 'ExecStopPost', execLine(argv, true));
  return u;
}

/** Exec*= words: plain ones stay plain, others are quoted (no specifiers, no $ expansion). */
function execLine(argv: readonly string[], ignoreFailure = false): string {
  const words = argv.map((w, i) => (/^[A-Za-z0-9_@+=:,./-]+$/.test(w) ? w : quoteExecArg(w, `network command word ${i}`)));
  return `${ignoreFailure ? '-' : ''}${words.join(' ')}`;
}

export interface DropIn {
  /** File name inside the .service.d directory. */
  file: string;
  unit: UnitFile;
}

/** Docker's default grace period before SIGKILL. */
export const DEFAULT_STOP_TIMEOUT_SEC = 10;

export function dropInDir(name: string): string {
  return `/etc/systemd/system/systemd-nspawn@${validateMachineName(name)}.service.d`;
}

export function toServiceDropIns(spec: ContainerSpec, opts: DropInOptions = {}): DropIn[] {
  const name = validateMachineName(spec.name);
  const dir = dropInDir(name);
  const mk = (file: string): UnitFile => {
    const u = new UnitFile(`${dir}/${file}`);
    u.comment(`Written by berth for container ${name}; edits are kept (or use systemctl edit).`);
    return u;
  };

  const unit = mk('50-berth-unit.conf');
  unit.set('Unit', 'Description', escapeSpecifiers(`berth container ${name} (${spec.image.ref})`, 'description'));
  if (opts.rootfsMountUnit !== undefined) {
    const m = checkUnitName('rootfs mount unit', opts.rootfsMountUnit, '.mount');
    unit.set('Unit', 'Requires', m).set('Unit', 'After', m);
  }

  const res = mk('50-berth-resources.conf');
  const r = spec.resources;
  if (r.memoryMax !== undefined) res.set('Service', 'MemoryMax', String(positiveInt('memory limit', r.memoryMax)));
  if (r.cpuQuotaPercent !== undefined) res.set('Service', 'CPUQuota', `${positiveInt('CPU quota', r.cpuQuotaPercent)}%`);
  if (r.tasksMax !== undefined) res.set('Service', 'TasksMax', String(positiveInt('pids limit', r.tasksMax)));
  if (spec.slice !== undefined) res.set('Service', 'Slice', checkUnitName('slice', spec.slice, '.slice'));

  const life = mk('50-berth-lifecycle.conf');
  life.set('Service', 'Restart', spec.restart);
  if (spec.restart !== 'no') {
    life.set('Service', 'RestartSec', '1s');
    const max = spec.restartMaxRetries;
    if (max !== undefined && spec.restart === 'on-failure') {
      // Approximation of Docker's on-failure:N: at most N restarts after the first start.
      life.set('Unit', 'StartLimitIntervalSec', 'infinity').set('Unit', 'StartLimitBurst', String(positiveInt('restart retries', max) + 1));
    } else {
      life.set('Unit', 'StartLimitIntervalSec', '0'); // Docker restarts forever
    }
  }
  const stop = spec.stopTimeoutSec ?? (spec.boot ? undefined : DEFAULT_STOP_TIMEOUT_SEC);
  if (stop !== undefined) life.set('Service', 'TimeoutStopSec', `${nonNegativeInt('stop timeout', stop)}s`);

  const volumes = volumesDropIn(spec, opts.volumeKinds);
  const out = [
    ...(volumes ? [{ file: VOLUMES_DROPIN, unit: volumes }] : []),
    { file: '50-berth-unit.conf', unit },
    { file: '50-berth-resources.conf', unit: res },
    { file: '50-berth-lifecycle.conf', unit: life },
  ];
  if (spec.network.mode === 'zone') {
    if (opts.network === undefined) throw new BerthError('INTERNAL', 'network zone without a prepared network namespace');
    out.push({ file: '60-berth-network.conf', unit: networkDropIn(name, opts.network, opts.start) });
  } else if (opts.start !== undefined) {
    out.push({ file: '40-berth-start.conf', unit: startDropIn(name, opts.start) });
  }
  return out;
}

function positiveInt(field: string, n: number): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new BerthError('INVALID_ARGUMENT', `${field}: ${n} is not a positive integer`);
  return n;
}

function nonNegativeInt(field: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new BerthError('INVALID_ARGUMENT', `${field}: ${n} is not a non-negative integer`);
  return n;
}
