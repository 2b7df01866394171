/**
 * @module runtime/nspawn/translate-dropins
 * Pure translation ContainerSpec → drop-ins for
 * `/etc/systemd/system/systemd-nspawn@NAME.service.d/`. One file per concern so that
 * `berth update` (or an admin) can replace one without touching the others:
 * - 50-berth-unit.conf       [Unit] Description=, Requires=/After= the rootfs mount unit
 * - 50-berth-resources.conf  [Service] MemoryMax=, CPUQuota=, TasksMax=, Slice=
 * - 50-berth-lifecycle.conf  [Service] Restart=, RestartSec=, TimeoutStopSec=; [Unit] StartLimit*
 * - 20-berth-volumes.conf    [Service] ExecStartPre=/ExecStopPost= staging the volumes (translate-volumes.ts)
 *
 * ExecStart= is NOT overridden: the template's `--settings=override` lets every setting in
 * NAME.nspawn beat its `--boot --network-veth -U` (verified on systemd 252), and
 * toNspawnFile states those settings explicitly. The stock RequiresMountsFor=
 * /var/lib/machines/%i already orders the service after a mount unit at that path; the
 * explicit Requires=/After= is for a mount unit elsewhere (and documents the dependency).
 */
import type { ContainerSpec } from '../../container/spec.ts';
import { validateMachineName } from '../../container/names.ts';
import { UnitFile } from '../../unit/unit-file.ts';
import { escapeSpecifiers } from '../../unit/quote.ts';
import { BerthError } from '../../base/errors.ts';
import { checkUnitName } from './translate-values.ts';
import { VOLUMES_DROPIN, volumesDropIn, type VolumeKind } from './translate-volumes.ts';

export interface DropInOptions {
  /** Mount unit that provides /var/lib/machines/NAME (e.g. var-lib-machines-web.mount). */
  rootfsMountUnit?: string;
  /** Kind of each spec.mounts[i] source (a file needs a file as staging point); default dir. */
  volumeKinds?: readonly (VolumeKind | undefined)[];
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
  return [
    ...(volumes ? [{ file: VOLUMES_DROPIN, unit: volumes }] : []),
    { file: '50-berth-unit.conf', unit },
    { file: '50-berth-resources.conf', unit: res },
    { file: '50-berth-lifecycle.conf', unit: life },
  ];
}

function positiveInt(field: string, n: number): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new BerthError('INVALID_ARGUMENT', `${field}: ${n} is not a positive integer`);
  return n;
}

function nonNegativeInt(field: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new BerthError('INVALID_ARGUMENT', `${field}: ${n} is not a non-negative integer`);
  return n;
}
