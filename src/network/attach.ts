/**
 * @module network/attach
 * A machine's attachment to a zone: allocated at create time under one lock (so 50
 * concurrent creates never collide; the lock covers only the allocation and the record,
 * the generated files are written after it), recorded in /etc/berth/machines/NAME/network.conf
 * with the generated files beside it, its name in the zone's hosts directory (the
 * resolver sees it at once), freed on rm. Port conflicts — with another machine's
 * publications or a host process already listening — are refused here, before anything
 * is written, and checked again before every start.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError, isBerthError } from '../base/errors.ts';
import { run } from '../base/exec.ts';
import { ensureDir, writeFileAtomic } from '../base/fs.ts';
import { withLock } from '../base/lock.ts';
import { firstFree, formatIPv4, isHostAddress, parseIPv4, parseSubnet } from './ipv4.ts';
import { DEFAULT_ZONE, hostIfName, machineNetDir, machinesNetDir, netnsName, validateZoneName, zoneHostsDir } from './names.ts';
import { clash, formatMapping, listenerClash, parseProcNet, pickHostPort, type Listener, type PortMapping } from './ports.ts';
import { parseAttachment, serializeAttachment, validateDnsName } from './record.ts';
import { machineFiles, runtimeNetwork as renderRuntime, zoneHostsEntry } from './render.ts';
import { helperPath } from '../native/index.ts';
import { requireTools } from './tools.ts';
import type { Attachment, NetworkRequest, RuntimeNetwork, Zone } from './types.ts';
import { networkLock, readZone, zoneForMachine } from './zones.ts';

function recordPath(machine: string): string {
  return join(machineNetDir(machine), 'network.conf');
}

/** The machine's attachment, or undefined when it has none (host/private networking). */
export async function readAttachment(machine: string): Promise<Attachment | undefined> {
  return readAttachmentWith(machine, readZone);
}

async function readAttachmentWith(machine: string, zoneOf: (name: string) => Promise<Zone>): Promise<Attachment | undefined> {
  const path = recordPath(machine);
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const zm = /^\s*Zone\s*=\s*(\S+)\s*$/m.exec(text);
  const zone = await zoneOf(validateZoneName(zm?.[1] ?? '', `${path}: Zone=`));
  return parseAttachment(text, path, machine, zone);
}

/** Every attachment on this host (all zones); each zone file is read once. */
export async function listAttachments(): Promise<Attachment[]> {
  const out: Attachment[] = [];
  const zones = new Map<string, Promise<Zone>>();
  const zoneOnce = (name: string): Promise<Zone> => {
    let z = zones.get(name);
    if (!z) zones.set(name, (z = readZone(name)));
    return z;
  };
  const names = (await readdir(machinesNetDir()).catch(() => [] as string[])).sort();
  const read = await Promise.all(names.map(async (m) => {
    try {
      return await readAttachmentWith(m, zoneOnce);
    } catch (e) {
      if (!isBerthError(e)) throw e;
      return undefined;
    }
  }));
  for (const a of read) if (a) out.push(a);
  return out;
}

export async function machinesInZone(zone: string): Promise<string[]> {
  return (await listAttachments()).filter((a) => a.zone.name === zone).map((a) => a.machine);
}

/** Sockets host processes have bound, from /proc/net (this process's network namespace). */
export async function hostListeners(): Promise<Listener[]> {
  const out: Listener[] = [];
  for (const [f, proto] of [['tcp', 'tcp'], ['tcp6', 'tcp'], ['udp', 'udp'], ['udp6', 'udp']] as const) {
    out.push(...parseProcNet(await readFile(`/proc/net/${f}`, 'utf8').catch(() => ''), proto));
  }
  return out;
}

function inUse(m: PortMapping, by: string): BerthError {
  return new BerthError('ALREADY_EXISTS', `host port ${m.hostIp ?? '0.0.0.0'}:${m.hostPort}/${m.proto} is already in use ${by}`, {
    details: { hostPort: m.hostPort, proto: m.proto, hostIp: m.hostIp },
  });
}

/** Throws ALREADY_EXISTS when a host process listens where the machine publishes. */
export function checkListeners(ports: readonly PortMapping[], listeners: readonly Listener[]): void {
  for (const p of ports) if (listenerClash(p, listeners)) throw inUse(p, 'by a process on this host');
}

/**
 * The files generated from the attachment (ip batch, netns.conf, resolv.conf, hosts, nft
 * rulesets, the zone resolver's entry). Only the machine itself uses them, so they are
 * written outside the network lock: under it, only the record (network.conf), which is
 * what allocations read.
 */
async function writeDerived(a: Attachment, hostname: string): Promise<void> {
  const dir = machineNetDir(a.machine);
  const hostResolv = await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
  await Promise.all(Object.entries(machineFiles(a, hostResolv, hostname)).map(([f, text]) => writeFileAtomic(join(dir, f), text)));
  await ensureDir(zoneHostsDir(a.zone.name));
  await writeFileAtomic(join(zoneHostsDir(a.zone.name), a.machine), zoneHostsEntry(a));
}

async function writeRecord(a: Attachment): Promise<void> {
  await ensureDir(machineNetDir(a.machine));
  await writeFileAtomic(recordPath(a.machine), serializeAttachment(a));
}

/**
 * Allocates the machine's place in its zone and writes its files. Returns undefined for
 * modes without a zone. All or nothing: a refused port or a full subnet writes nothing.
 */
export async function attachMachine(machine: string, req: NetworkRequest, opts: { hostname?: string } = {}): Promise<Attachment | undefined> {
  if (req.mode !== 'zone') {
    if ((req.publish ?? []).length > 0) throw new BerthError('INVALID_ARGUMENT', `publishing ports needs a network zone, not --network=${req.mode === 'link' ? 'veth' : req.mode}`);
    return undefined;
  }
  requireTools();
  const zoneName = validateZoneName(req.zone ?? DEFAULT_ZONE, '--network');
  const aliases = (req.aliases ?? []).map((a) => validateDnsName(a));
  const a = await withLock(networkLock(), async () => {
    const zone = await zoneForMachine(zoneName);
    const subnet = parseSubnet(zone.subnet);
    const others = (await listAttachments()).filter((a) => a.machine !== machine);
    const taken = new Set(others.filter((a) => a.zone.name === zone.name).map((a) => parseIPv4(a.address)));
    let address: number;
    if (req.ip !== undefined) {
      address = parseIPv4(req.ip, '--ip');
      if (!isHostAddress(subnet, address)) throw new BerthError('INVALID_ARGUMENT', `--ip ${req.ip} is not a machine address in zone ${zone.name} (${zone.subnet}, gateway ${zone.gateway})`);
      const owner = others.find((a) => a.zone.name === zone.name && a.address === formatIPv4(address));
      if (owner) throw new BerthError('ALREADY_EXISTS', `--ip ${req.ip} is already used by machine ${owner.machine}`, { details: { machine: owner.machine } });
    } else {
      const free = firstFree(subnet, taken);
      if (free === undefined) throw new BerthError('NO_SPACE', `network zone ${zone.name} (${zone.subnet}) has no free address`);
      address = free;
    }
    const listeners = (req.publish ?? []).length > 0 ? await hostListeners() : [];
    const used: PortMapping[] = [];
    for (const r of req.publish ?? []) {
      const m: PortMapping = { ...r, hostPort: r.hostPort === 0 ? pickHostPort(r, [...used, ...others.flatMap((a) => a.ports)], listeners) : r.hostPort };
      const mine = used.find((u) => clash(u, m));
      if (mine) throw new BerthError('INVALID_ARGUMENT', `-p: host port ${m.hostPort}/${m.proto} is published twice (${formatMapping(mine)}, ${formatMapping(m)})`);
      const other = others.find((a) => a.ports.some((p) => clash(p, m)));
      if (other) throw inUse(m, `by machine ${other.machine}`);
      if (listenerClash(m, listeners)) throw inUse(m, 'by a process on this host');
      used.push(m);
    }
    const addHosts = (req.addHosts ?? []).map((h) => ({ name: h.name, ip: h.ip === 'host-gateway' ? zone.gateway : h.ip }));
    const a: Attachment = {
      machine, zone, address: formatIPv4(address), hostIf: hostIfName(machine), netns: netnsName(machine), ports: used, aliases,
      dns: req.dns ?? [], addHosts,
    };
    try {
      await writeRecord(a);
    } catch (e) {
      await removeFiles(a).catch(() => {});
      throw e;
    }
    return a;
  });
  try {
    await writeDerived(a, opts.hostname ?? machine);
  } catch (e) {
    await removeFiles(a).catch(() => {});
    throw e;
  }
  return a;
}

function runtimeNetwork(a: Attachment): RuntimeNetwork {
  return renderRuntime(a, helperPath());
}

/** The machine's files, the record (what allocations read) last: its address is free only then. */
async function removeFiles(a: Pick<Attachment, 'machine' | 'zone'>): Promise<void> {
  await rm(join(zoneHostsDir(a.zone.name), a.machine), { force: true });
  await rm(recordPath(a.machine), { force: true });
  await rm(machineNetDir(a.machine), { recursive: true, force: true });
}

/**
 * Frees the machine's address and ports (rm). Idempotent; leftovers of a crash are removed.
 * No network lock: the caller holds the machine's own lock, and dropping a record can
 * only make an address free (an allocation that still saw it just picks another).
 */
export async function detachMachine(machine: string): Promise<void> {
  const a = await readAttachment(machine).catch(() => undefined);
  if (a) {
    // Leftovers of a killed attached run; a unit's ExecStopPost= already removed its own.
    const rn = runtimeNetwork(a);
    if (existsSync(rn.netnsPath)) await teardown(rn);
    await removeFiles(a);
  } else {
    await rm(machineNetDir(machine), { recursive: true, force: true });
  }
}

/** Moves a stopped machine's attachment to a new name: same zone, address and ports. */
export async function renameAttachment(from: string, to: string, opts: { hostname?: string } = {}): Promise<Attachment | undefined> {
  return withLock(networkLock(), async () => {
    const a = await readAttachment(from);
    if (!a) return undefined;
    const b: Attachment = { ...a, machine: to, hostIf: hostIfName(to), netns: netnsName(to) };
    await writeRecord(b);
    await writeDerived(b, opts.hostname ?? to);
    await removeFiles(a);
    return b;
  });
}

/** What the runtime runs for the machine, or undefined without an attachment. */
export async function runtimeNetworkFor(machine: string): Promise<RuntimeNetwork | undefined> {
  const a = await readAttachment(machine);
  return a ? runtimeNetwork(a) : undefined;
}

/** Before a start: the machine's host ports must still be free of host processes. */
export async function checkPortsFree(machine: string): Promise<void> {
  const a = await readAttachment(machine);
  if (a && a.ports.length > 0) checkListeners(a.ports, await hostListeners());
}

/** Runs the setup commands (attached runs, which are not units); undoes them on failure. */
export async function setup(rn: RuntimeNetwork): Promise<void> {
  // Leftovers of a killed attached run (the namespace holds the veth's other end).
  if (existsSync(rn.netnsPath)) await teardown(rn);
  try {
    for (const argv of rn.setup) await run(argv, { timeoutMs: 15_000, errorCode: 'FAILED_PRECONDITION' });
  } catch (e) {
    await teardown(rn);
    throw e;
  }
}

/** Runs the teardown commands, ignoring failures (nothing to remove is fine). */
export async function teardown(rn: RuntimeNetwork): Promise<void> {
  for (const argv of rn.teardown) await run(argv, { reject: false, timeoutMs: 15_000 });
}

