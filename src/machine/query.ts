/**
 * @module machine/query
 * Read-only views, computed from systemd every time (berth keeps no state of its own):
 * the machine set is the union of /etc/systemd/nspawn/*.nspawn, loaded
 * systemd-nspawn@*.service units (ListUnitsByPatterns) and machined's ListMachines, so a
 * machine made with machinectl or nspawn directly shows up too. Image and command come
 * from the .nspawn file ([X-Berth] and [Exec]), state from systemd, registration from
 * machined: `ps` costs the same three reads for 10 machines or 200. A unit systemd has not
 * loaded is inactive (dead), which is what loading it would say; `ps` never loads one.
 */
import { readdir, readFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { attachmentView, readAttachment, type NetworkView } from '../network/index.ts';
import { parseNspawnWords, parseUnit, type UnitFile } from '../unit/index.ts';
import { isValidMachineName, nameFromUnit } from '../container/names.ts';
import {
  formatTimestamp, isRunningState, listMachines, listNspawnUnits, machineInfo, machinePaths, nspawnDir, showMachine, showUnit, systemdIsPid1,
  payloadOf, readSettingsFileSync, unitDir, unitName, unitProperties, unitState, type UnitState,
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
  try {
    return text === undefined ? undefined : parseUnit(text);
  } catch {
    return undefined; // half-written or hand-broken: the machine still shows, without its metadata
  }
}

/** What `ps` reads of a .nspawn file: get() of a few keys, and whether a section exists. */
export type SettingsView = Pick<UnitFile, 'get' | 'hasSection'>;

const SUMMARY_KEYS = new Set(['Exec\0Parameters', 'Exec\0Boot', 'X-Berth\0Image']);
const SECTION_LINE = /^\[([^[\]]+)\]$/;

/**
 * The keys `ps` shows, read in one pass over the text without building a UnitFile (200
 * files: ~1 ms, where parseUnit with its line objects took ~10 ms and most of ps's GC).
 * Same reading as parseUnit (last assignment wins, `#`/`;` comments, a bad line makes the
 * whole file unreadable); a file with a continuation line goes to parseUnit itself.
 */
export function summarySettings(text: string): SettingsView | undefined {
  if (text.includes('\0')) return undefined;
  const values = new Map<string, string>();
  const sections = new Set<string>();
  let section: string | undefined;
  let at = 0;
  while (at <= text.length) {
    let end = text.indexOf('\n', at);
    if (end < 0) end = text.length;
    const t = text.slice(at, end).trim();
    at = end + 1;
    if (t === '' || t[0] === '#' || t[0] === ';') continue;
    if (t.endsWith('\\')) {
      try {
        return parseUnit(text);
      } catch {
        return undefined;
      }
    }
    const m = t[0] === '[' ? SECTION_LINE.exec(t) : null;
    if (m) {
      section = m[1] ?? '';
      sections.add(section);
      continue;
    }
    const eq = t.indexOf('=');
    if (eq <= 0 || section === undefined) return undefined;
    const k = `${section}\0${t.slice(0, eq).trim()}`;
    if (SUMMARY_KEYS.has(k)) values.set(k, t.slice(eq + 1).trim());
  }
  return {
    get: (s: string, k: string) => values.get(`${s}\0${k}`),
    hasSection: (s: string) => sections.has(s),
  };
}

/** The command from the .nspawn file's Parameters= (the forwarding init's `--` stripped). */
export function commandOf(u: Pick<UnitFile, 'get'> | undefined): string[] {
  const p = u?.get('Exec', 'Parameters');
  if (!p) return u?.get('Exec', 'Boot') === 'yes' ? ['(boot)'] : [];
  try {
    return payloadOf(parseNspawnWords(p)).command;
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

/** .nspawn files by machine name (settings undefined when a file is unreadable or half-written). */
async function readAllSettings(): Promise<Map<string, SettingsView | undefined>> {
  const files = (await readdir(nspawnDir()).catch(() => [] as string[]))
    .filter((f) => f.endsWith('.nspawn') && isValidMachineName(f.slice(0, -'.nspawn'.length)));
  const out = new Map<string, SettingsView | undefined>();
  // Synchronous reads: 200 small files take ~4 ms this way and ~45 ms through
  // fs/promises (four thread-pool round trips and a promise each), which was most of
  // what `ps` paid per machine.
  for (const f of files) {
    const name = f.slice(0, -'.nspawn'.length);
    const text = readSettingsFileSync(`${nspawnDir()}/${f}`);
    // Removed between readdir and read: gone, unless something else still shows it. A FIFO,
    // device or directory of that name is no settings file (and is never waited on); a
    // huge regular one shows as a machine without its metadata.
    if (text === undefined) {
      if (statSync(`${nspawnDir()}/${f}`, { throwIfNoEntry: false })?.isFile()) out.set(name, undefined);
      continue;
    }
    out.set(name, summarySettings(text));
  }
  return out;
}

/** Machines enabled at boot: links in machines.target.wants (what `machinectl enable` makes). */
async function enabledNames(): Promise<Set<string>> {
  const out = new Set<string>();
  for (const f of await readdir(`${unitDir()}/machines.target.wants`).catch(() => [] as string[])) {
    const n = nameFromUnit(f);
    if (n) out.add(n);
  }
  return out;
}

interface Sources {
  settings: Map<string, SettingsView | undefined>;
  units: Map<string, UnitState>;
  registered: Map<string, string>;
}

/**
 * Everything `ps` needs, in a constant number of calls whatever the machine count: one
 * readdir (+ the .nspawn files), one ListUnitsByPatterns, one ListMachines.
 */
async function gather(): Promise<Sources> {
  const sd = systemdIsPid1();
  const [settings, units, machines] = await Promise.all([
    readAllSettings(),
    sd ? listNspawnUnits() : Promise.resolve([] as UnitState[]),
    sd ? listMachines() : Promise.resolve([]),
  ]);
  return {
    settings,
    units: new Map(units.map((u) => [u.id, u])),
    registered: new Map(machines.filter((m) => m.class === 'container' && isValidMachineName(m.machine)).map((m) => [m.machine, m.class])),
  };
}

function namesOf(s: Sources): string[] {
  const names = new Set<string>(s.settings.keys());
  for (const u of s.units.values()) {
    const n = nameFromUnit(u.id);
    // A loaded unit that is not inactive is a machine (half removed, failed, started by
    // hand); an inactive one without settings is only a unit systemd has not collected yet.
    if (n && u.activeState !== 'inactive') names.add(n);
  }
  for (const n of s.registered.keys()) names.add(n);
  return [...names].sort();
}

export async function listMachineNames(): Promise<string[]> {
  return namesOf(await gather());
}

export async function listMachineSummaries(opts: { detail?: boolean } = {}): Promise<MachineSummary[]> {
  const [src, enabled] = await Promise.all([gather(), enabledNames()]);
  const names = namesOf(src);
  return Promise.all(names.map(async (name): Promise<MachineSummary> => {
    const unit = unitName(name); // the name is valid: a .nspawn file, unit or machine of that name
    const settings = src.settings.get(name);
    let u: UnitState | undefined = src.units.get(unit);
    let id = unit;
    if (src.registered.has(name) && u?.activeState !== 'active') {
      // Started by hand (machinectl/nspawn in a unit of its own): show that unit's state.
      const own = (await machineInfo(name).catch(() => undefined))?.unit;
      if (own && own !== unit) {
        u = await unitState(own);
        id = own;
      }
    }
    const state = u?.activeState ?? (src.settings.has(name) ? 'inactive' : 'unknown');
    const running = isRunningState(state);
    let detail: Record<string, unknown> = {};
    if (opts.detail && u && u.loadState !== 'not-loaded') detail = (await unitProperties(id, { load: false }).catch(() => undefined)) ?? {};
    const ts = running ? detail.ActiveEnterTimestamp : detail.InactiveEnterTimestamp;
    const mainPid = Number(detail.MainPID ?? 0);
    return {
      name,
      unit: id,
      image: settings?.get('X-Berth', 'Image') ? parseNspawnWords(settings.get('X-Berth', 'Image') ?? '')[0] : undefined,
      command: commandOf(settings),
      state,
      subState: u?.subState ?? (src.settings.has(name) ? 'dead' : ''),
      running,
      mainPid: mainPid > 0 ? mainPid : undefined,
      since: typeof ts === 'bigint' ? formatTimestamp(ts) || undefined : undefined,
      enabled: id === unit ? (enabled.has(name) ? 'enabled' : 'disabled') : (typeof detail.UnitFileState === 'string' && detail.UnitFileState) || undefined,
      registered: src.registered.get(name),
      berth: settings?.hasSection('X-Berth') ?? false,
    };
  }));
}

/** `berth inspect`: settings (parsed), drop-ins, unit properties, registration. */
export async function inspectMachine(name: string): Promise<Record<string, unknown>> {
  const p = machinePaths(name);
  const settings = await readSettings(name);
  const sd = systemdIsPid1();
  const [unit, machine] = await Promise.all([
    sd ? showUnit(p.unit).catch(() => ({} as Record<string, string>)) : Promise.resolve({} as Record<string, string>),
    sd ? showMachine(name) : Promise.resolve(undefined),
  ]);
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
