/**
 * @module machine/query
 * Read-only views, computed from systemd every time (berth keeps no state of its own):
 * the machine set is the union of /etc/systemd/nspawn/*.nspawn, loaded
 * systemd-nspawn@*.service units and `machinectl list`, so a machine made with machinectl
 * or nspawn directly shows up too. Image and command come from the .nspawn file
 * ([X-Berth] and [Exec]), state from `systemctl show`, registration from machined.
 */
import { readdir, readFile } from 'node:fs/promises';
import { attachmentView, readAttachment, type NetworkView } from '../network/index.ts';
import { parseNspawnWords, parseUnit, type UnitFile } from '../unit/index.ts';
import { isValidMachineName, nameFromUnit } from '../container/names.ts';
import {
  listMachines, listNspawnUnits, machinePaths, nspawnDir, parseShow, showMachine, showUnit, systemctl, systemdIsPid1,
} from '../runtime/nspawn/index.ts';

export interface MachineSummary {
  name: string;
  unit: string;
  image?: string;
  command: string[];
  /** ActiveState/SubState of the unit, or "created"/"running" without systemd. */
  state: string;
  subState: string;
  running: boolean;
  mainPid?: number;
  since?: string;
  enabled?: string;
  /** machined class when registered (container, vm). */
  registered?: string;
  berth: boolean;
}

export async function readSettings(name: string): Promise<UnitFile | undefined> {
  const text = await readFile(machinePaths(name).nspawnFile, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : parseUnit(text);
}

/** The command from the .nspawn file's Parameters= (the forwarding init's `--` stripped). */
export function commandOf(u: UnitFile | undefined): string[] {
  const p = u?.get('Exec', 'Parameters');
  if (!p) return u?.get('Exec', 'Boot') === 'yes' ? ['(boot)'] : [];
  try {
    let w = parseNspawnWords(p);
    if (w[0] === '/run/host/berth/init' && w[1] === '--') w = w.slice(2);
    if (w[0] === '/run/host/berth/setuser' && w[2] === '--') w = w.slice(3);
    return w;
  } catch {
    return [p];
  }
}

export interface ImageUse {
  machine: string;
  /** Manifest digest ([X-Berth] Digest). */
  digest: string;
  chainIds: string[];
}

/**
 * Which images berth machines use, from their .nspawn files' [X-Berth] metadata (the files
 * are the state; nothing else is recorded). Prune keeps these images' blobs and snapshots,
 * and rmi refuses to untag an image a machine uses unless forced, as Docker does.
 */
export async function imagesInUse(): Promise<ImageUse[]> {
  const out: ImageUse[] = [];
  for (const f of await readdir(nspawnDir()).catch(() => [] as string[])) {
    if (!f.endsWith('.nspawn')) continue;
    const text = await readFile(`${nspawnDir()}/${f}`, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    let u: UnitFile;
    try {
      u = parseUnit(text);
    } catch {
      continue;
    }
    const digest = u.get('X-Berth', 'Digest');
    if (digest) out.push({ machine: f.replace(/\.nspawn$/, ''), digest, chainIds: u.getAll('X-Berth', 'ChainId') });
  }
  return out;
}

export async function listMachineNames(): Promise<string[]> {
  const names = new Set<string>();
  for (const f of await readdir(nspawnDir()).catch(() => [] as string[])) {
    const n = f.replace(/\.nspawn$/, '');
    if (f.endsWith('.nspawn') && isValidMachineName(n)) names.add(n);
  }
  if (systemdIsPid1()) {
    for (const u of await listNspawnUnits()) {
      const n = u.Id ? nameFromUnit(u.Id) : undefined;
      if (n) names.add(n);
    }
    for (const m of await listMachines()) if (m.class === 'container' && isValidMachineName(m.machine)) names.add(m.machine);
  }
  return [...names].sort();
}

const PROPS = ['Id', 'ActiveState', 'SubState', 'MainPID', 'ActiveEnterTimestamp', 'InactiveEnterTimestamp', 'UnitFileState', 'Result', 'ExecMainStatus'];

export async function listMachineSummaries(): Promise<MachineSummary[]> {
  const names = await listMachineNames();
  if (names.length === 0) return [];
  const units = new Map<string, Record<string, string>>();
  if (systemdIsPid1()) {
    const r = await systemctl(['show', ...PROPS.flatMap((p) => ['-p', p]), '--', ...names.map((n) => machinePaths(n).unit)], { reject: false });
    for (const s of parseShow(r.stdout)) if (s.Id) units.set(s.Id, s);
  }
  const registered = new Map((systemdIsPid1() ? await listMachines() : []).map((m) => [m.machine, m.class]));
  const out: MachineSummary[] = [];
  for (const name of names) {
    const p = machinePaths(name);
    const settings = await readSettings(name);
    let u = units.get(p.unit) ?? {};
    if (registered.has(name) && u.ActiveState !== 'active') {
      // Started by hand (machinectl/nspawn in a unit of its own): show that unit's state.
      const own = (await showMachine(name))?.Unit;
      if (own && own !== p.unit) u = { ...(await showUnit(own, PROPS)), Id: own };
    }
    const state = u.ActiveState ?? (settings ? 'created' : 'unknown');
    const running = state === 'active' || state === 'activating' || state === 'deactivating' || state === 'reloading';
    out.push({
      name,
      unit: u.Id ?? p.unit,
      image: settings?.get('X-Berth', 'Image') ? parseNspawnWords(settings.get('X-Berth', 'Image') ?? '')[0] : undefined,
      command: commandOf(settings),
      state,
      subState: u.SubState ?? '',
      running,
      mainPid: u.MainPID && u.MainPID !== '0' ? Number(u.MainPID) : undefined,
      since: (running ? u.ActiveEnterTimestamp : u.InactiveEnterTimestamp) || undefined,
      enabled: u.UnitFileState || undefined,
      registered: registered.get(name),
      berth: settings?.hasSection('X-Berth') ?? false,
    });
  }
  return out;
}

/** `berth inspect`: settings (parsed), drop-ins, unit properties, registration. */
export async function inspectMachine(name: string): Promise<Record<string, unknown>> {
  const p = machinePaths(name);
  const settings = await readSettings(name);
  const unit = systemdIsPid1() ? parseShow((await systemctl(['show', '--', p.unit], { reject: false })).stdout)[0] ?? {} : {};
  const machine = systemdIsPid1() ? await showMachine(name) : undefined;
  const sections: Record<string, Record<string, string[]>> = {};
  for (const s of settings?.sectionNames() ?? []) {
    sections[s] = {};
    for (const k of settings?.keys(s) ?? []) (sections[s] as Record<string, string[]>)[k] = settings?.getAll(s, k) ?? [];
  }
  const dropIns: Record<string, string> = {};
  for (const f of await readdir(p.dropInDir).catch(() => [] as string[])) {
    if (f.endsWith('.conf')) dropIns[f] = await readFile(`${p.dropInDir}/${f}`, 'utf8');
  }
  const image = settings?.get('X-Berth', 'Image');
  return {
    Name: name,
    Unit: p.unit,
    Image: image ? parseNspawnWords(image)[0] : undefined,
    ImageDigest: settings?.get('X-Berth', 'Digest'),
    ImageId: settings?.get('X-Berth', 'ImageId'),
    Command: commandOf(settings),
    State: { ActiveState: unit.ActiveState, SubState: unit.SubState, MainPID: Number(unit.MainPID ?? 0), Result: unit.Result, ExecMainStatus: unit.ExecMainStatus, Since: unit.ActiveEnterTimestamp, Enabled: unit.UnitFileState },
    Resources: { MemoryMax: unit.MemoryMax, MemoryCurrent: unit.MemoryCurrent, CPUQuotaPerSecUSec: unit.CPUQuotaPerSecUSec, TasksMax: unit.TasksMax, TasksCurrent: unit.TasksCurrent, Slice: unit.Slice, Restart: unit.Restart },
    Machine: machine ?? null,
    Paths: { Settings: p.nspawnFile, DropIns: p.dropInDir, Root: p.rootDir, Upper: p.upper, Work: p.work },
    Network: await networkOf(name, settings),
    Settings: sections,
    DropInFiles: dropIns,
  };
}

/** The machine's network: its zone attachment, or the mode its .nspawn file states. */
export async function networkOf(name: string, settings: UnitFile | undefined): Promise<NetworkView> {
  const a = await readAttachment(name);
  if (a) return attachmentView(a);
  const priv = settings?.get('Network', 'Private');
  const veth = settings?.get('Network', 'VirtualEthernet');
  const mode = priv === 'no' ? 'host' : veth === 'yes' ? 'link' : 'private';
  return { mode, ports: [], aliases: [], dns: [] };
}
