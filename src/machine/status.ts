/**
 * @module machine/status
 * `berth status NAME`: one view of a machine, gathered from the same sources as
 * `systemctl status` and `machinectl status` (never a private copy): the unit's
 * properties (systemd over D-Bus), the machine registration and its addresses (machined's
 * GetMachine and GetMachineAddresses, not `machinectl status` text), the cgroup tree
 * (`systemd-cgls --unit`), berth's metadata from the .nspawn file, and the unit's last
 * journal lines.
 *
 * CPU time and task count come from systemd when it accounts them; on a host where the
 * cpu/pids controllers are not delegated to systemd (hybrid cgroups, v1 controllers
 * read-only, as in the test host) they are read from the unit's cgroup2 directory instead
 * (`cpu.stat` usage_usec, `cgroup.threads`), which the kernel keeps for every cgroup.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../base/exec.ts';
import { parseNspawnWords } from '../unit/index.ts';
import { formatTimestamp, machineAddresses, machineInfo, machinePaths, systemdIsPid1, unitProperties } from '../runtime/nspawn/index.ts';
import { commandOf, networkOf, readSettings } from './query.ts';
import { formatMapping, viewLine, type NetworkView } from '../network/index.ts';

export interface MachineStatus {
  name: string;
  unit: string;
  description?: string;
  /** FragmentPath and UnitFileState (enabled/disabled/…). */
  loaded?: string;
  enabled?: string;
  dropIns: string[];
  activeState: string;
  subState: string;
  result?: string;
  since?: string;
  mainPid?: number;
  nRestarts?: number;
  restart?: string;
  machine?: { leader: number; class: string; service?: string; root?: string; state?: string };
  addresses: string[];
  network: NetworkView;
  image?: string;
  digest?: string;
  command: string[];
  memory: { current?: number; max?: number };
  cpuNSec?: number;
  tasks: { current?: number; max?: number };
  cgroup?: string;
  cgroupTree: string[];
  journal: string[];
}

/** A number property, undefined for "not set" (UINT64_MAX) and the like. */
function num(v: unknown): number | undefined {
  if (typeof v === 'bigint') return v >= 2n ** 63n ? undefined : Number(v);
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  return undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The unit's directory in the cgroup2 tree (pure v2 or the hybrid "unified" mount). */
async function cgroup2Dir(cg: string): Promise<string | undefined> {
  for (const root of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    const d = join(root, cg);
    if (await readFile(join(d, 'cgroup.threads'), 'utf8').then(() => true, () => false)) return d;
  }
  return undefined;
}

async function countThreads(dir: string): Promise<number> {
  let n = (await readFile(join(dir, 'cgroup.threads'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) n += await countThreads(join(dir, e.name));
  }
  return n;
}

async function cpuUsageNSec(dir: string): Promise<number | undefined> {
  const m = /^usage_usec (\d+)$/m.exec(await readFile(join(dir, 'cpu.stat'), 'utf8').catch(() => ''));
  return m ? Number(m[1]) * 1000 : undefined;
}

/** The "Address:" block of `machinectl status` text (kept for callers that have only that text). */
export function parseAddresses(machinectlStatus: string): string[] {
  const lines = machinectlStatus.split('\n');
  const i = lines.findIndex((l) => /^\s*Address: /.test(l));
  if (i < 0) return [];
  const out = [(lines[i] ?? '').replace(/^\s*Address:\s*/, '').trim()];
  for (const l of lines.slice(i + 1)) {
    if (/^\s*[A-Za-z][\w ]*: /.test(l) || l.trim() === '') break;
    out.push(l.trim());
  }
  return out;
}

export async function machineStatus(name: string, opts: { lines?: number } = {}): Promise<MachineStatus> {
  const p = machinePaths(name);
  const settings = await readSettings(name);
  const sd = systemdIsPid1();
  const machine = sd ? await machineInfo(name) : undefined;
  // A machine started by hand (machinectl/nspawn in some other unit) has its own unit.
  const unit = machine?.unit && !machine.unit.startsWith('systemd-nspawn@') ? machine.unit : p.unit;
  const u: Record<string, unknown> = sd ? (await unitProperties(unit)) ?? {} : {};
  const active = str(u.ActiveState);
  const since = active === 'active' ? u.ActiveEnterTimestamp : u.InactiveEnterTimestamp;
  const st: MachineStatus = {
    name,
    unit,
    description: str(u.Description),
    loaded: str(u.FragmentPath),
    enabled: str(u.UnitFileState),
    dropIns: Array.isArray(u.DropInPaths) ? (u.DropInPaths as string[]) : [],
    activeState: active ?? (settings ? 'created' : 'unknown'),
    subState: str(u.SubState) ?? '',
    result: str(u.Result),
    since: typeof since === 'bigint' ? formatTimestamp(since) || undefined : undefined,
    mainPid: num(u.MainPID) || undefined,
    nRestarts: num(u.NRestarts),
    restart: str(u.Restart),
    machine: machine ? { leader: machine.leader, class: machine.class, service: machine.service, root: machine.rootDirectory, state: machine.state } : undefined,
    addresses: [],
    network: await networkOf(name, settings),
    image: settings?.get('X-Berth', 'Image') ? parseNspawnWords(settings.get('X-Berth', 'Image') ?? '')[0] : undefined,
    digest: settings?.get('X-Berth', 'Digest'),
    command: commandOf(settings),
    memory: { current: num(u.MemoryCurrent), max: num(u.MemoryMax) },
    cpuNSec: num(u.CPUUsageNSec),
    tasks: { current: num(u.TasksCurrent), max: num(u.TasksMax) },
    cgroup: str(u.ControlGroup),
    cgroupTree: [],
    journal: [],
  };
  if (!sd) return st;
  if (st.cgroup) {
    const dir = await cgroup2Dir(st.cgroup);
    if (dir && st.cpuNSec === undefined) st.cpuNSec = await cpuUsageNSec(dir);
    if (dir && st.tasks.current === undefined) st.tasks.current = await countThreads(dir);
    const cgls = await run(['systemd-cgls', '--no-pager', '-l', '--unit', unit], { reject: false, timeoutMs: 10_000 });
    st.cgroupTree = cgls.stdout.split('\n').slice(1).filter((l) => l !== '');
  }
  if (machine) {
    // As machinectl prints them: a link-local IPv6 address gets "%IFINDEX" when the
    // machine has exactly one network interface (in_addr_ifindex_to_string()).
    const ifi = machine.networkInterfaces.length === 1 ? machine.networkInterfaces[0] : undefined;
    st.addresses = (await machineAddresses(name).catch(() => [])).map((a) =>
      (a.family === 'inet6' && ifi !== undefined && ifi > 0 && /^fe[89ab][0-9a-f]:/i.test(a.address) ? `${a.address}%${ifi}` : a.address));
  }
  const j = await run(['journalctl', '-u', unit, '-n', String(opts.lines ?? 10), '--no-pager', '-q', '-o', 'short-iso'], { reject: false, timeoutMs: 15_000 });
  st.journal = j.stdout.split('\n').filter((l) => l !== '');
  return st;
}

/** systemd's format_bytes(): 1024-based, one decimal, B/K/M/G/T. */
export function formatBytes(n: number): string {
  const units = ['B', 'K', 'M', 'G', 'T', 'P'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n}B` : `${(Math.floor(v * 10) / 10).toFixed(1)}${units[i]}`;
}

function formatNSec(ns: number): string {
  const ms = Math.round(ns / 1e6);
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(3)}s`;
}

/** The text of `berth status`: "Key: value" lines (stable, parseable), tree, journal. */
export function formatStatus(s: MachineStatus): string {
  const rows: Array<[string, string]> = [];
  const add = (k: string, v: string | undefined): void => {
    rows.push([k, v === undefined || v === '' ? '-' : v]);
  };
  add('Unit', `${s.unit}${s.description ? ` - ${s.description}` : ''}`);
  add('Loaded', s.loaded ? `${s.loaded}; ${s.enabled ?? '-'}` : undefined);
  add('Drop-In', s.dropIns.map((d) => d.slice(d.lastIndexOf('/') + 1)).join(', '));
  add('Active', `${s.activeState} (${s.subState || '-'})${s.result && s.result !== 'success' ? ` result ${s.result}` : ''}${s.since ? ` since ${s.since}` : ''}`);
  add('Main PID', s.mainPid ? String(s.mainPid) : undefined);
  add('Restart', s.restart ? `${s.restart} (restarted ${s.nRestarts ?? 0} times)` : undefined);
  add('Machine', s.machine ? `${s.machine.state ?? 'registered'}, class ${s.machine.class}, leader ${s.machine.leader}` : 'not registered');
  add('Address', s.addresses.join(' '));
  add('Network', viewLine(s.network));
  add('Ports', s.network.ports.map((p) => formatMapping({ hostIp: p.hostIp, hostPort: p.hostPort, containerPort: p.containerPort, proto: p.protocol })).join(', '));
  add('Image', s.image);
  add('Digest', s.digest);
  add('Command', s.command.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' '));
  const mem = s.memory.current !== undefined ? formatBytes(s.memory.current) : '-';
  add('Memory', `${mem}${s.memory.max !== undefined ? ` (max: ${formatBytes(s.memory.max)})` : ''}`);
  add('CPU', s.cpuNSec !== undefined ? formatNSec(s.cpuNSec) : undefined);
  add('Tasks', `${s.tasks.current ?? '-'}${s.tasks.max !== undefined ? ` (limit: ${s.tasks.max})` : ''}`);
  add('CGroup', s.cgroup);
  const w = Math.max(...rows.map(([k]) => k.length));
  const out = [`● ${s.name}`, ...rows.map(([k, v]) => `${k.padStart(w + 1)}: ${v}`)];
  out.push(...s.cgroupTree.map((l) => `${' '.repeat(w + 3)}${l}`));
  if (s.journal.length) out.push('', ...s.journal);
  return `${out.join('\n')}\n`;
}
