/**
 * @module network/attach
 * A machine's attachment to a zone: its address claimed at create time by creating the
 * file zones/ZONE/addrs/ADDRESS exclusively (100 concurrent creates never collide and
 * never queue; only published ports take the network lock), recorded in /etc/berth/machines/NAME/network.conf
 * with the generated files beside it, its name in the zone's hosts directory (the
 * resolver sees it at once), freed on rm. Port conflicts — with another machine's
 * publications or a host process already listening — are refused here, before anything
 * is written, and checked again before every start.
 */
import { link, open, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError, fromSystemError, isBerthError } from '../base/errors.ts';
import { run } from '../base/exec.ts';
import { ensureDir, fsyncDir, isErrno, tempPathFor, writeFileAtomic, writeFilesAtomic } from '../base/fs.ts';
import { withLock } from '../base/lock.ts';
import { firstFree, formatIPv4, isHostAddress, parseIPv4, parseSubnet } from './ipv4.ts';
import { DEFAULT_ZONE, hostIfName, machineNetDir, machinesNetDir, netnsName, validateZoneName, zoneDir, zoneHostsDir, zonesDir } from './names.ts';
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
  await writeFilesAtomic(dir, Object.entries(machineFiles(a, hostResolv, hostname)).map(([file, text]) => ({ file, text })));
  await ensureDir(zoneHostsDir(a.zone.name));
  await writeFileAtomic(join(zoneHostsDir(a.zone.name), a.machine), zoneHostsEntry(a));
}

async function writeRecord(a: Attachment): Promise<void> {
  await ensureDir(machineNetDir(a.machine));
  await writeFileAtomic(recordPath(a.machine), serializeAttachment(a));
}

/** A claim file's name: the dotted address it claims. */
const CLAIM_NAME = /^\d{1,3}(\.\d{1,3}){3}$/;

/**
 * The zone's address claims: one file per address in use, named by the address and
 * holding the machine's name, created exclusively (link(2)), so concurrent creates
 * allocate without a lock: each reads the names (one readdir, whatever the machine
 * count), tries the first free address, and on EEXIST the next. The record
 * (network.conf) is written after the claim; `rm` removes the claim last.
 */
function claimsDir(zone: string): string {
  return join(zoneDir(zone), 'addrs');
}

/** The machine holding address in zone, from its claim file (undefined: unclaimed). */
async function claimOwner(zone: string, address: string): Promise<string | undefined> {
  const text = await readFile(join(claimsDir(zone), address), 'utf8').catch(() => undefined);
  return text?.trim() || undefined;
}

/**
 * Claims an address for machine and returns it: `want` exactly (undefined when another
 * machine holds it), or else the first free one. The claim's content is written and
 * fsynced once; each attempt is one link(2), and a lost race re-reads the directory's
 * names, so 100 creates at once cost ~100 links and readdirs, not 100 files each.
 */
async function claimAddress(zone: Zone, machine: string, want?: number): Promise<number | undefined> {
  const dir = claimsDir(zone.name);
  const subnet = parseSubnet(zone.subnet);
  const tmp = tempPathFor(join(dir, 'claim'));
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(`${machine}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    const tried = new Set<number>();
    for (;;) {
      let address: number | undefined = want;
      if (address === undefined) {
        const taken = await claimedAddresses(zone.name);
        for (const t of tried) taken.add(t);
        address = firstFree(subnet, taken);
        if (address === undefined) throw new BerthError('NO_SPACE', `network zone ${zone.name} (${zone.subnet}) has no free address`);
      }
      try {
        await link(tmp, join(dir, formatIPv4(address)));
      } catch (e) {
        if (!isErrno(e, 'EEXIST')) throw e;
        // Ours already (a create of this name that was killed after its claim): keep it.
        if ((await claimOwner(zone.name, formatIPv4(address))) === machine) return address;
        if (want !== undefined) return undefined;
        tried.add(address);
        continue;
      }
      await fsyncDir(dir);
      return address;
    }
  } catch (e) {
    if (isErrno(e, 'ENOENT')) throw new BerthError('NOT_FOUND', `network zone ${zone.name} was removed meanwhile`, { details: { zone: zone.name } });
    throw fromSystemError(e);
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Drops the machine's claim on address (only its own: a claim never moves to another). */
async function releaseAddress(zone: string, address: string, machine: string): Promise<void> {
  if ((await claimOwner(zone, address)) === machine) await rm(join(claimsDir(zone), address), { force: true });
}

/** Addresses claimed in the zone: the claim files' names, nothing read. */
async function claimedAddresses(zone: string): Promise<Set<number>> {
  const out = new Set<number>();
  for (const f of await readdir(claimsDir(zone)).catch(() => [] as string[])) {
    if (CLAIM_NAME.test(f)) out.add(parseIPv4(f));
  }
  return out;
}

/**
 * Makes sure the zone has its claims directory. A zone made before claims existed gets
 * one, under the network lock, from the records of its machines (once per zone).
 */
async function ensureClaims(zone: Zone): Promise<void> {
  if (existsSync(claimsDir(zone.name))) return;
  await withLock(networkLock(), () => migrateClaims(zone));
}

/** ensureClaims' work; call under networkLock(). */
async function migrateClaims(zone: Zone): Promise<void> {
  const dir = claimsDir(zone.name);
  if (existsSync(dir)) return;
  await readZone(zone.name); // removed while we waited: NOT_FOUND
  const tmp = `${dir}.${process.pid}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await ensureDir(tmp);
  for (const a of await listAttachments()) {
    if (a.zone.name === zone.name) await writeFile(join(tmp, a.address), `${a.machine}\n`, { mode: 0o644 });
  }
  await fsyncDir(tmp);
  await rename(tmp, dir);
  await fsyncDir(zoneDir(zone.name));
}

/** The zone to join; the default zone is made on first use (under the network lock). */
async function joinZone(name: string): Promise<Zone> {
  try {
    return await readZone(name);
  } catch (e) {
    if (!isBerthError(e, 'NOT_FOUND') || name !== DEFAULT_ZONE) throw e;
    return withLock(networkLock(), () => zoneForMachine(name));
  }
}

/**
 * Allocates the machine's place in its zone and writes its files. Returns undefined for
 * modes without a zone. All or nothing: a refused port or a full subnet writes nothing.
 * The address is claimed without a lock (claimAddress); only published ports take the
 * network lock, because checking them against other machines' ports reads every record.
 */
export async function attachMachine(machine: string, req: NetworkRequest, opts: { hostname?: string } = {}): Promise<Attachment | undefined> {
  if (req.mode !== 'zone') {
    if ((req.publish ?? []).length > 0) throw new BerthError('INVALID_ARGUMENT', `publishing ports needs a network zone, not --network=${req.mode === 'link' ? 'veth' : req.mode}`);
    return undefined;
  }
  requireTools();
  const zoneName = validateZoneName(req.zone ?? DEFAULT_ZONE, '--network');
  const aliases = (req.aliases ?? []).map((a) => validateDnsName(a));
  const zone = await joinZone(zoneName);
  await ensureClaims(zone);
  const subnet = parseSubnet(zone.subnet);
  const allocate = async (): Promise<Attachment> => {
    await ensureDir(machineNetDir(machine)); // before the claim: rm finds a claim left by a killed create
    let address: number;
    try {
      if (req.ip !== undefined) {
        const want = parseIPv4(req.ip, '--ip');
        if (!isHostAddress(subnet, want)) throw new BerthError('INVALID_ARGUMENT', `--ip ${req.ip} is not a machine address in zone ${zone.name} (${zone.subnet}, gateway ${zone.gateway})`);
        const got = await claimAddress(zone, machine, want);
        if (got === undefined) {
          const owner = await claimOwner(zone.name, formatIPv4(want));
          throw new BerthError('ALREADY_EXISTS', `--ip ${req.ip} is already used by machine ${owner ?? '(unknown)'}`, { details: { machine: owner } });
        }
        address = got;
      } else {
        address = (await claimAddress(zone, machine)) as number;
      }
    } catch (e) {
      await rm(machineNetDir(machine), { recursive: true, force: true }).catch(() => {});
      throw e;
    }
    try {
      const used: PortMapping[] = [];
      if ((req.publish ?? []).length > 0) {
        const others = (await listAttachments()).filter((a) => a.machine !== machine);
        const listeners = await hostListeners();
        for (const r of req.publish ?? []) {
          const m: PortMapping = { ...r, hostPort: r.hostPort === 0 ? pickHostPort(r, [...used, ...others.flatMap((a) => a.ports)], listeners) : r.hostPort };
          const mine = used.find((u) => clash(u, m));
          if (mine) throw new BerthError('INVALID_ARGUMENT', `-p: host port ${m.hostPort}/${m.proto} is published twice (${formatMapping(mine)}, ${formatMapping(m)})`);
          const other = others.find((a) => a.ports.some((p) => clash(p, m)));
          if (other) throw inUse(m, `by machine ${other.machine}`);
          if (listenerClash(m, listeners)) throw inUse(m, 'by a process on this host');
          used.push(m);
        }
      }
      const addHosts = (req.addHosts ?? []).map((h) => ({ name: h.name, ip: h.ip === 'host-gateway' ? zone.gateway : h.ip }));
      const a: Attachment = {
        machine, zone, address: formatIPv4(address), hostIf: hostIfName(machine), netns: netnsName(machine), ports: used, aliases,
        dns: req.dns ?? [], addHosts,
      };
      await writeRecord(a);
      return a;
    } catch (e) {
      await removeFiles({ machine, zone, address: formatIPv4(address) }).catch(() => {});
      throw e;
    }
  };
  const a = (req.publish ?? []).length > 0 ? await withLock(networkLock(), allocate) : await allocate();
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

/**
 * The machine's files, then the record, then its address claim (what allocations read):
 * the address is free only once nothing else of the machine is left.
 */
async function removeFiles(a: Pick<Attachment, 'machine' | 'zone' | 'address'>, opts: { keepClaim?: boolean } = {}): Promise<void> {
  await rm(join(zoneHostsDir(a.zone.name), a.machine), { force: true });
  await rm(recordPath(a.machine), { force: true });
  await rm(machineNetDir(a.machine), { recursive: true, force: true });
  if (!opts.keepClaim) await releaseAddress(a.zone.name, a.address, a.machine);
}

/** Claims a create killed between its claim and its record left behind (rm of such a machine). */
async function releaseOrphanClaims(machine: string): Promise<void> {
  for (const z of await readdir(zonesDir()).catch(() => [] as string[])) {
    if (z.endsWith('.zone') || z.startsWith('.')) continue;
    const dir = join(zonesDir(), z, 'addrs');
    for (const f of await readdir(dir).catch(() => [] as string[])) {
      if (!CLAIM_NAME.test(f)) continue;
      if ((await readFile(join(dir, f), 'utf8').catch(() => '')).trim() === machine) await rm(join(dir, f), { force: true });
    }
  }
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
  } else if (existsSync(machineNetDir(machine))) {
    // A zone machine whose create was killed before its record: its claim may be left.
    await releaseOrphanClaims(machine);
    await rm(machineNetDir(machine), { recursive: true, force: true });
  }
}

/** Moves a stopped machine's attachment to a new name: same zone, address and ports. */
export async function renameAttachment(from: string, to: string, opts: { hostname?: string } = {}): Promise<Attachment | undefined> {
  return withLock(networkLock(), async () => {
    const a = await readAttachment(from);
    if (!a) return undefined;
    await migrateClaims(a.zone);
    const b: Attachment = { ...a, machine: to, hostIf: hostIfName(to), netns: netnsName(to) };
    // The claim changes hands in place (one rename), so the address is never free between.
    await writeFileAtomic(join(claimsDir(a.zone.name), a.address), `${to}\n`);
    await writeRecord(b);
    await writeDerived(b, opts.hostname ?? to);
    await removeFiles(a, { keepClaim: true });
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

