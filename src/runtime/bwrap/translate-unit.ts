/**
 * @module runtime/bwrap/translate-unit
 * Pure translation → systemd *user* unit files in ~/.config/systemd/user:
 * - `berth-sandbox@.service`: the template, the same for every container of the user
 *   (Type=exec, the launcher's PATH, kill and stop behaviour, [Install] for `enable`);
 * - `berth-sandbox@NAME.service.d/50-berth.conf`: the container: ExecStart= (see
 *   translate-argv), stop signal and timeout, restart policy, resource limits, and an
 *   [X-Berth] section (systemd ignores X- sections) naming the image, manifest digest and
 *   layer chain IDs, which is what gcRoots() reads.
 * Resource limits need the controllers delegated to the user's manager; without them the
 * translator refuses (FAILED_PRECONDITION, naming what is missing) instead of writing
 * MemoryMax= that systemd would silently not enforce.
 */
import { BerthError } from '../../base/errors.ts';
import type { ContainerSpec } from '../../container/spec.ts';
import { validateMachineName } from '../../container/names.ts';
import { escapeSpecifiers, quoteExecLine } from '../../unit/quote.ts';
import { UnitFile } from '../../unit/unit-file.ts';
import { toSandboxCommand } from './translate-argv.ts';
import type { BwrapOptions } from './types.ts';

export const TEMPLATE_NAME = 'berth-sandbox@.service';
export const unitName = (name: string): string => `berth-sandbox@${validateMachineName(name)}.service`;
export const DROPIN_FILE = '50-berth.conf';
export const DEFAULT_STOP_TIMEOUT_SEC = 10;

/** Which controller each limit needs, and the unit property it becomes. */
const LIMITS = [
  { field: 'memoryMax', controller: 'memory', key: 'MemoryMax', flag: '--memory', render: (n: number) => String(n) },
  { field: 'cpuQuotaPercent', controller: 'cpu', key: 'CPUQuota', flag: '--cpus', render: (n: number) => `${n}%` },
  { field: 'tasksMax', controller: 'pids', key: 'TasksMax', flag: '--pids-limit', render: (n: number) => String(n) },
] as const;

export function toTemplateUnit(opts: Pick<BwrapOptions, 'unitDir'>): UnitFile {
  const u = new UnitFile(`${opts.unitDir}/${TEMPLATE_NAME}`);
  u.comment('Written by berth: the sandbox of a user container; each container adds');
  u.comment('berth-sandbox@NAME.service.d/50-berth.conf (ExecStart=, limits, restart policy).');
  u.set('Unit', 'Description', 'berth container %i');
  u.set('Service', 'Type', 'exec');
  u.set('Service', 'Environment', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  // Every process of the container gets the stop signal (the payload is PID 2 under
  // bwrap's reaper, and pasta sits beside it), SIGKILL after TimeoutStopSec=.
  u.set('Service', 'KillMode', 'control-group');
  u.set('Service', 'StandardInput', 'null');
  // Default SIGPIPE disposition, as in any container; pasta (2023-03) also refuses to start
  // when it inherits SIGPIPE ignored ("Couldn't install signal handlers").
  u.set('Service', 'IgnoreSIGPIPE', 'no');
  u.set('Service', 'SyslogIdentifier', 'berth-%i');
  // 125 = the launcher failed; never worth an automatic restart loop.
  u.set('Service', 'RestartPreventExitStatus', '125');
  u.set('Install', 'WantedBy', 'default.target');
  return u;
}

function positiveInt(field: string, n: number): number {
  if (!Number.isSafeInteger(n) || n <= 0) throw new BerthError('INVALID_ARGUMENT', `${field}: ${n} is not a positive integer`, { details: { field } });
  return n;
}

function checkUnitName(field: string, u: string, suffix: string): string {
  if (!/^[A-Za-z0-9:_.\\@-]+\.[a-z]+$/.test(u) || u.length > 255 || !u.endsWith(suffix)) {
    throw new BerthError('INVALID_ARGUMENT', `${field}: "${u}" is not a valid ${suffix} unit name`, { details: { field } });
  }
  return u;
}

function checkSignal(s: string): string {
  if (!/^SIG(?:[A-Z][A-Z0-9]{1,7}|RTMIN(?:\+\d{1,2})?|RTMAX(?:-\d{1,2})?)$/.test(s)) {
    throw new BerthError('INVALID_ARGUMENT', `stop signal: "${s}" is not a signal name`, { details: { field: 'stopSignal' } });
  }
  return s;
}

function checkExitFile(p: string): string {
  if (!p.startsWith('/') || /[\0\n]/.test(p) || p.split('/').includes('..')) {
    throw new BerthError('INVALID_ARGUMENT', `exit file path "${p}" must be absolute without ".."`, { details: { field: 'exitFile' } });
  }
  return p;
}

export interface MachineDropIn {
  /** Directory of the drop-in (…/berth-sandbox@NAME.service.d). */
  dir: string;
  file: string;
  unit: UnitFile;
}

export function toMachineDropIn(spec: ContainerSpec, opts: BwrapOptions): MachineDropIn {
  const name = validateMachineName(spec.name);
  const dir = `${opts.unitDir}/${unitName(name)}.d`;
  const u = new UnitFile(`${dir}/${DROPIN_FILE}`);
  u.comment(`Written by berth for container ${name}; edits are kept (or use systemctl --user edit).`);
  u.set('Unit', 'Description', escapeSpecifiers(`berth container ${name} (${spec.image.ref})`, 'description'));

  const missing = LIMITS.filter((l) => spec.resources[l.field] !== undefined && !opts.delegatedControllers.includes(l.controller));
  if (missing.length > 0) {
    const where = opts.cgroupPath ?? "the user manager's cgroup";
    throw new BerthError('FAILED_PRECONDITION',
      `${missing.map((l) => l.flag).join(', ')} need the ${missing.map((l) => l.controller).join(', ')} cgroup controller${missing.length > 1 ? 's' : ''} delegated to ${opts.user.name}'s systemd, and ${where} has ${opts.delegatedControllers.length ? `only: ${opts.delegatedControllers.join(' ')}` : 'none'}; without them the limit would not be enforced (enable cgroup v2 with Delegate=memory cpu pids for user@.service, or run without the limit)`,
      { details: { missing: missing.map((l) => l.controller), reason: 'cgroup-controllers-not-delegated' } });
  }

  const cmd = toSandboxCommand(spec, opts);
  u.set('Service', 'ExecStart', quoteExecLine(cmd.execStart, 'ExecStart'));
  // systemd unloads an inactive unit and forgets its exit status; keep systemd's own words
  // ($SERVICE_RESULT $EXIT_CODE $EXIT_STATUS, expanded by sh, not by systemd) beside the upper dir.
  u.set('Service', 'ExecStopPost', quoteExecLine(['/bin/sh', '-c', 'printf "%s %s %s\\n" "$SERVICE_RESULT" "$EXIT_CODE" "$EXIT_STATUS" > "$1"', 'berth-exit', checkExitFile(opts.paths.exitFile)], 'ExecStopPost'));
  u.set('Service', 'KillSignal', checkSignal(spec.stopSignal ?? 'SIGTERM'));
  const stop = spec.stopTimeoutSec ?? DEFAULT_STOP_TIMEOUT_SEC;
  if (!Number.isSafeInteger(stop) || stop < 0) throw new BerthError('INVALID_ARGUMENT', `stop timeout: ${stop} is not a non-negative integer`);
  u.set('Service', 'TimeoutStopSec', `${stop}s`);
  u.set('Service', 'Restart', spec.restart);
  if (spec.restart !== 'no') {
    u.set('Service', 'RestartSec', '1s');
    if (spec.restartMaxRetries !== undefined && spec.restart === 'on-failure') {
      u.set('Unit', 'StartLimitIntervalSec', 'infinity').set('Unit', 'StartLimitBurst', String(positiveInt('restart retries', spec.restartMaxRetries) + 1));
    } else {
      u.set('Unit', 'StartLimitIntervalSec', '0');
    }
  }
  for (const l of LIMITS) {
    const v = spec.resources[l.field];
    if (v !== undefined) u.set('Service', l.key, l.render(positiveInt(l.flag, v)));
  }
  if (spec.slice !== undefined) u.set('Service', 'Slice', checkUnitName('slice', spec.slice, '.slice'));

  u.set('X-Berth', 'Runtime', 'bwrap');
  u.set('X-Berth', 'Image', escapeSpecifiers(spec.image.ref, 'image reference'));
  u.set('X-Berth', 'Digest', spec.image.digest);
  u.set('X-Berth', 'ImageId', spec.image.id);
  for (const c of spec.image.chainIds) u.add('X-Berth', 'ChainId', c);
  u.set('X-Berth', 'Network', cmd.net);
  return { dir, file: DROPIN_FILE, unit: u };
}
