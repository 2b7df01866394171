/**
 * @module dbus/machine1
 * A typed proxy for org.freedesktop.machine1 (systemd-machined): ListMachines, GetMachine
 * and its properties (Leader, Class, Unit, State, …), GetMachineAddresses, KillMachine and
 * TerminateMachine: what `machinectl list/show/status/kill/terminate` print or do, without
 * parsing their text. machined is bus-activated; when it cannot be reached the proxy says
 * FAILED_PRECONDITION and callers treat "no machined" as "no registered machines".
 */
import { dbusErrorName, type Bus } from './connection.ts';

const DEST = 'org.freedesktop.machine1';
const PATH = '/org/freedesktop/machine1';
const MANAGER = 'org.freedesktop.machine1.Manager';
const MACHINE = 'org.freedesktop.machine1.Machine';

export interface MachineListEntry {
  name: string;
  class: string;
  /** The registering service ("nspawn"), not the unit. */
  service: string;
  path: string;
}

export interface MachineInfo {
  name: string;
  class: string;
  service: string;
  unit: string;
  leader: number;
  rootDirectory: string;
  state: string;
  /** Realtime µs of registration. */
  timestamp: bigint;
  networkInterfaces: number[];
  /** The 128-bit machine id as 32 hex digits (zeros when unknown). */
  id: string;
}

export interface MachineAddress {
  family: 'inet' | 'inet6';
  address: string;
}

/** IPv6 text form as glibc's inet_ntop writes it (RFC 5952: longest zero run as ::). */
export function formatIPv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${[...b.subarray(12)].join('.')}`;
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export class MachineManager {
  constructor(private readonly bus: Bus) {}

  private call(member: string, signature = '', body: unknown[] = []): Promise<unknown[]> {
    return this.bus.call({ destination: DEST, path: PATH, interface: MANAGER, member, signature, body });
  }

  async listMachines(): Promise<MachineListEntry[]> {
    const [rows] = await this.call('ListMachines');
    return (rows as unknown[][]).map((r) => ({ name: r[0] as string, class: r[1] as string, service: r[2] as string, path: r[3] as string }));
  }

  /** The machine's object path, undefined when no machine of that name is registered. */
  async getMachine(name: string): Promise<string | undefined> {
    try {
      const [p] = await this.call('GetMachine', 's', [name]);
      return p as string;
    } catch (e) {
      if (dbusErrorName(e) === 'org.freedesktop.machine1.NoSuchMachine') return undefined;
      throw e;
    }
  }

  async machineInfo(path: string): Promise<MachineInfo> {
    const [m] = await this.bus.call({ destination: DEST, path, interface: 'org.freedesktop.DBus.Properties', member: 'GetAll', signature: 's', body: [MACHINE] });
    const p = m as Map<string, unknown>;
    const id = p.get('Id');
    return {
      name: String(p.get('Name') ?? ''),
      class: String(p.get('Class') ?? ''),
      service: String(p.get('Service') ?? ''),
      unit: String(p.get('Unit') ?? ''),
      leader: Number(p.get('Leader') ?? 0),
      rootDirectory: String(p.get('RootDirectory') ?? ''),
      state: String(p.get('State') ?? ''),
      timestamp: typeof p.get('Timestamp') === 'bigint' ? (p.get('Timestamp') as bigint) : 0n,
      networkInterfaces: Array.isArray(p.get('NetworkInterfaces')) ? (p.get('NetworkInterfaces') as number[]) : [],
      id: Array.isArray(id) ? Buffer.from(id as number[]).toString('hex') : '',
    };
  }

  /** Registered machine by name, or undefined. */
  async machine(name: string): Promise<MachineInfo | undefined> {
    const path = await this.getMachine(name);
    if (!path) return undefined;
    try {
      return await this.machineInfo(path);
    } catch (e) {
      // Gone between the two calls (terminated): not registered.
      if (/UnknownObject|NoSuchMachine/.test(dbusErrorName(e) ?? '')) return undefined;
      throw e;
    }
  }

  /** The container's addresses, read by machined from inside its network namespace. */
  async addresses(name: string): Promise<MachineAddress[]> {
    const [rows] = await this.call('GetMachineAddresses', 's', [name]);
    const out: MachineAddress[] = [];
    for (const [family, bytes] of rows as Array<[number, number[]]>) {
      const b = Uint8Array.from(bytes);
      if (family === 2 && b.length === 4) out.push({ family: 'inet', address: [...b].join('.') });
      else if (family === 10 && b.length === 16) out.push({ family: 'inet6', address: formatIPv6(b) });
    }
    return out;
  }

  async kill(name: string, who: 'leader' | 'all', signal: number): Promise<void> {
    await this.call('KillMachine', 'ssi', [name, who, signal]);
  }

  async terminate(name: string): Promise<void> {
    await this.call('TerminateMachine', 's', [name]);
  }
}
