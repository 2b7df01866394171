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
import { isDigest, type Digest } from '../../base/digest.ts';
import { BerthError } from '../../base/errors.ts';
import type { ContainerSpec } from '../../container/spec.ts';
import { validateMachineName } from '../../container/names.ts';
import { escapeSpecifiers, quoteExecLine } from '../../unit/quote.ts';
import { UnitFile } from '../../unit/unit-file.ts';
import { toSandboxCommand } from './translate-argv.ts';
import type { GcRoots } from '../runtime.ts';
import type { BwrapOptions, PortMapping } from './types.ts';

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
  // What ps and port read back without asking anyone: the command (JSON, one line) and one
  // "PROTO HOSTIP|* HOSTPORT CONTAINERPORT" per published port (toSandboxCommand checked them).
  u.set('X-Berth', 'Command', JSON.stringify(spec.process.args));
  for (const p of opts.publish ?? []) u.add('X-Berth', 'Port', `${p.protocol} ${p.hostIp ?? '*'} ${p.hostPort} ${p.containerPort}`);
  return { dir, file: DROPIN_FILE, unit: u };
}

/** The published ports an [X-Berth] section records (lines that do not parse are skipped). */
export function portsOfDropIn(u: UnitFile): PortMapping[] {
  const out: PortMapping[] = [];
  for (const line of u.getAll('X-Berth', 'Port')) {
    const m = /^(tcp|udp) (\*|[0-9A-Fa-f.:]+) (\d{1,5}) (\d{1,5})$/.exec(line);
    if (!m) continue;
    out.push({ ...(m[2] === '*' ? {} : { hostIp: m[2]! }), hostPort: Number(m[3]), containerPort: Number(m[4]), protocol: m[1] as 'tcp' | 'udp' });
  }
  return out;
}

/** The image reference an [X-Berth] section records (specifier-escaped there). */
export function imageOfDropIn(u: UnitFile): string | undefined {
  return u.get('X-Berth', 'Image')?.replaceAll('%%', '%');
}

/** The manifests and layer chain IDs the drop-ins name: what prune must keep. */
export function gcRootsOfDropIns(units: Iterable<UnitFile | undefined>): GcRoots {
  const roots: GcRoots = { manifests: [], chainIds: [] };
  for (const u of units) {
    const d = u?.get('X-Berth', 'Digest');
    if (d && isDigest(d)) roots.manifests.push(d as Digest);
    for (const c of u?.getAll('X-Berth', 'ChainId') ?? []) if (isDigest(c)) roots.chainIds.push(c as Digest);
  }
  return roots;
}

/** `systemctl show` output of several units (blank-line separated blocks) → property maps by Id. */
export function parseShowBlocks(text: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const block of text.split(/\n\s*\n/)) {
    const p: Record<string, string> = {};
    for (const l of block.split('\n')) {
      const i = l.indexOf('=');
      if (i > 0) p[l.slice(0, i)] = l.slice(i + 1);
    }
    if (p.Id) out.set(p.Id, p);
  }
  return out;
}

/** The command an [X-Berth] section records ([] when absent or not a JSON string array). */
export function commandOfDropIn(u: UnitFile): string[] {
  try {
    const v = JSON.parse(u.get('X-Berth', 'Command') ?? '[]') as unknown;
    return Array.isArray(v) && v.every((a) => typeof a === 'string') ? v : [];
  } catch {
    return [];
  }
}

/**
 * Splits an ExecStart=-style value of a unit file into words as systemd's
 * extract_first_word(UNQUOTE|CUNESCAPE) + specifier expansion would, except that `$$` is
 * kept (the words go to a transient unit, where systemd still turns `$$` into `$` at
 * spawn time, but expands no specifiers). A specifier other than `%%` is refused: its value
 * depends on the unit it sits in.
 */
export function parseExecWords(value: string, field = 'ExecStart'): string[] {
  const words: string[] = [];
  let i = 0;
  const bad = (why: string): never => {
    throw new BerthError('INVALID_ARGUMENT', `${field}: ${why}`, { details: { field } });
  };
  const ESC: Record<string, string> = { n: '\n', t: '\t', '\\': '\\', '"': '"', "'": "'", ' ': ' ', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', s: ' ' };
  while (i < value.length) {
    while (i < value.length && /\s/.test(value[i]!)) i++;
    if (i >= value.length) break;
    let w = '';
    let quote: string | undefined;
    for (; i < value.length; i++) {
      const c = value[i]!;
      if (quote === undefined && /\s/.test(c)) break;
      if (c === quote) { quote = undefined; continue; }
      if (quote === undefined && (c === '"' || c === "'")) { quote = c; continue; }
      if (c === '\\') {
        const n = value[++i];
        if (n === undefined) bad('ends in a backslash');
        if (ESC[n!] === undefined) bad(`unsupported escape "\\${n}"`);
        w += ESC[n!];
        continue;
      }
      if (c === '%') {
        if (value[i + 1] !== '%') bad(`specifier "%${value[i + 1] ?? ''}" cannot be carried into a transient unit`);
        i++;
        w += '%';
        continue;
      }
      w += c;
    }
    if (quote !== undefined) bad('unterminated quote');
    words.push(w);
  }
  return words;
}

/** One word for a transient unit's exec property (systemd-run -p): quotes and C escapes, no `%%`; `$$` passes as is. */
function quoteTransientWord(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`;
}

/** [Service] settings of template + drop-in that the foreground run carries over as they are. */
const TRANSIENT_KEYS = ['Type', 'Environment', 'KillMode', 'KillSignal', 'TimeoutStopSec', 'IgnoreSIGPIPE', 'MemoryMax', 'CPUQuota', 'TasksMax', 'Slice'];

export const attachedUnitName = (name: string): string => `berth-run-${validateMachineName(name)}.service`;

export interface AttachedRun {
  /** The transient service (berth-run-NAME.service); in child mode the name it would have had. */
  unit: string;
  /**
   * 'unit': `argv` is systemd-run's. 'child': `argv` is the sandbox's own command, which
   * berth runs as its child in the caller's session and cgroup, with `env` only.
   */
  mode: 'unit' | 'child';
  /** Why a transient unit is needed (empty in child mode): for --debug and tests. */
  why: string[];
  argv: string[];
  env: Record<string, string>;
  /** The stop signal and timeout the unit files give (child mode applies them itself). */
  killSignal: string;
  stopTimeoutSec: number;
}

/**
 * Whether a foreground run can do without systemd: only when nothing the user asked for
 * needs a unit. A terminal needs systemd-run's fresh pty (berth's own terminal must never
 * be the container's: TIOCSTI); limits and a slice need a cgroup of the unit's own; pasta
 * lives outside the sandbox's PID namespace, so only a unit's cgroup reliably ends it when
 * berth is killed. Without those, the sandbox is berth's child like podman's rootless
 * `run --rm`: bwrap --die-with-parent (PR_SET_PDEATHSIG) takes its PID namespace down with
 * berth, and the mount and user namespaces go with their last process.
 */
function needsUnit(argv: string[], props: Map<string, string>, tty: boolean): string[] {
  const why: string[] = [];
  if (tty) why.push('a terminal');
  for (const k of ['MemoryMax', 'CPUQuota', 'TasksMax', 'Slice']) if (props.get(k)) why.push(k);
  // unshare … -- SH LAUNCHER LOWERS UPPER WORK MERGED CHECK NET NETNS TCP UDP -- BWRAP…
  const i = argv.indexOf('--');
  const net = i > 0 ? argv[i + 8] : undefined;
  if (net !== 'none' && net !== 'host') why.push(net === 'pasta' ? 'pasta' : 'a command berth did not write');
  else if (argv[i + 12] !== '--' || !/(^|\/)bwrap$/.test(argv[i + 13] ?? '')) why.push('a command berth did not write');
  // systemd would expand $VAR (and turn $$ into $): a lone $ means an edit berth cannot carry out itself.
  if (argv.some((a) => /\$(?!\$)/.test(a.replace(/\$\$/g, '')))) why.push('$ expansion');
  return why;
}

function killSignalOf(v: string | undefined): string {
  return v !== undefined && /^SIG[A-Z0-9+-]{2,10}$/.test(v) ? v : 'SIGTERM';
}

/** TimeoutStopSec= as systemd writes it ("10s", "90", "1min 30s" is not written by berth: default then). */
function stopSecondsOf(v: string | undefined): number {
  const m = /^(\d{1,6})(s|sec)?$/.exec(v ?? '');
  return m ? Number(m[1]) : DEFAULT_STOP_TIMEOUT_SEC;
}

/**
 * The stop signal and timeout (KillSignal=, TimeoutStopSec=) of the container's unit files,
 * the drop-in's over the template's: what a foreground run without a unit applies itself.
 */
export function stopSettingsOf(dropIn: UnitFile | undefined, template?: UnitFile): { killSignal: string; stopTimeoutSec: number } {
  const last = (k: string): string | undefined => dropIn?.getAll('Service', k).at(-1) ?? template?.getAll('Service', k).at(-1);
  return { killSignal: killSignalOf(last('KillSignal')), stopTimeoutSec: stopSecondsOf(last('TimeoutStopSec')) };
}

/** Environment= words ("K=V" each, quoted as systemd allows) → a map; malformed words are dropped. */
function environmentOf(values: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of values) {
    for (const kv of parseExecWords(v, 'Environment')) {
      const i = kv.indexOf('=');
      if (i > 0 && /^[A-Za-z_][A-Za-z0-9_]*$/.test(kv.slice(0, i))) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
  }
  return env;
}

/**
 * A foreground run of the same sandbox, from the unit files (so isolation, limits and network
 * are the drop-in's, whatever edits it has). Mode 'child' when needsUnit() finds nothing:
 * the unit's own command with `$$` made `$` (systemd's spawn-time rule) and bwrap's
 * --die-with-parent added. Mode 'unit' otherwise: `systemd-run --user --wait --collect` of a
 * transient *service* with that command and the settings of TRANSIENT_KEYS, its stdio passed
 * through (`--pipe`) or a terminal of its own (`--pty`). A service and not a scope: when its
 * first process ends, systemd kills what is left in its cgroup (pasta, a daemonised child),
 * so nothing outlives the run even when berth itself is killed. With a terminal, bwrap's
 * --new-session is dropped so the payload gets the pty as its controlling terminal (Ctrl-C
 * reaches it); that pty is systemd-run's own, so TIOCSTI can only push input into the
 * container itself.
 */
export function toAttachedRun(template: UnitFile, dropIn: UnitFile, opts: { name: string; tty: boolean; stdin: boolean }): AttachedRun {
  const name = validateMachineName(opts.name);
  const unit = attachedUnitName(name);
  const last = (k: string): string | undefined => dropIn.getAll('Service', k).at(-1) ?? template.getAll('Service', k).at(-1);
  const execStart = dropIn.getAll('Service', 'ExecStart').filter((v) => v !== '').at(-1);
  if (execStart === undefined) throw new BerthError('FAILED_PRECONDITION', `container ${name}: its drop-in has no ExecStart=`, { details: { name } });
  let argv = parseExecWords(execStart, 'ExecStart');
  const envValues = [...template.getAll('Service', 'Environment'), ...dropIn.getAll('Service', 'Environment')].filter((v) => v !== '');
  const settings = new Map<string, string>();
  for (const k of TRANSIENT_KEYS) {
    const v = last(k);
    if (v !== undefined && v !== '') settings.set(k, v);
  }
  const common = { unit, ...stopSettingsOf(dropIn, template) };
  const why = needsUnit(argv, settings, opts.tty);
  let env: Record<string, string> = {};
  try {
    env = environmentOf(envValues);
  } catch {
    why.push('an Environment= with specifiers');
  }
  if (why.length === 0) {
    const words = argv.map((a) => a.replaceAll('$$', '$'));
    const b = words.indexOf('--', words.indexOf('--') + 1) + 1;
    return { ...common, mode: 'child', why, argv: [...words.slice(0, b + 1), '--die-with-parent', ...words.slice(b + 1)], env };
  }
  if (opts.tty) {
    const b = argv.findIndex((a) => /(^|\/)bwrap$/.test(a));
    const ns = argv.indexOf('--new-session', b);
    if (b >= 0 && ns > b) argv = [...argv.slice(0, ns), ...argv.slice(ns + 1)];
  }
  const props: string[] = [];
  for (const k of TRANSIENT_KEYS) {
    const v = k === 'Environment' ? envValues : [last(k)];
    for (const one of v) if (one !== undefined && one !== '') props.push('-p', `${k}=${one}`);
  }
  for (const v of dropIn.getAll('Service', 'ExecStopPost').filter((x) => x !== '')) {
    props.push('-p', `ExecStopPost=${parseExecWords(v, 'ExecStopPost').map(quoteTransientWord).join(' ')}`);
  }
  props.push('-p', `SyslogIdentifier=berth-${name}`, '-p', `Description=berth container ${name} (attached)`);
  return {
    ...common, mode: 'unit', why, env: {},
    argv: ['systemd-run', '--user', `--unit=${unit}`, '--quiet', '--wait', '--collect', opts.tty ? '--pty' : '--pipe', ...props, '--', ...argv],
  };
}
