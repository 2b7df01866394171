/**
 * @module network/zones
 * Zones on disk and in the kernel: `zone create/ls/inspect/rm`. A zone is its definition
 * file (/etc/berth/zones/ZONE.zone, the only state) plus what is generated from it: the
 * nft ruleset, the hosts directory its resolver watches, and berth-zone-ZONE.service,
 * which creates the bridge, loads the rules and runs dnsmasq. Machines `Requires=` that
 * unit, so the bridge appears when the first machine starts; `zone rm` removes it all.
 * The default zone `berth` is created on first use.
 */
import { readdir, readFile, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError, isBerthError } from '../base/errors.ts';
import { run } from '../base/exec.ts';
import { ensureDir, writeFileAtomic } from '../base/fs.ts';
import { withLock } from '../base/lock.ts';
import { serializeUnit } from '../unit/index.ts';
import { formatSubnet, overlaps, parseIPv4, parseSubnet, type Subnet } from './ipv4.ts';
import {
  DEFAULT_ZONE, RESERVED_NETWORK_NAMES, etcDir, validateZoneName, zoneDir, zoneFile, zoneHostsDir, zonesDir, zoneTable, zoneUnit, zoneUnitPath,
} from './names.ts';
import { parseZone, serializeZone } from './record.ts';
import { dnsmasqArgv, dropTableNft, zoneNft, zoneOf, zonePidFile, zoneSetup, zoneUnitFile } from './render.ts';
import { requireTools, systemdRunning } from './tools.ts';
import type { Zone } from './types.ts';

/** Serializes zone and address allocation across berth processes. */
export function networkLock(): string {
  return join(etcDir(), '.network.lock');
}

export async function readZone(name: string): Promise<Zone> {
  validateZoneName(name);
  const path = zoneFile(name);
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) throw new BerthError('NOT_FOUND', `no such network zone: ${name} (see \`berth zone ls\`)`, { details: { zone: name } });
  return parseZone(text, path);
}

export async function listZones(): Promise<Zone[]> {
  const names = (await readdir(zonesDir()).catch(() => [] as string[])).filter((f) => f.endsWith('.zone')).map((f) => f.slice(0, -5)).sort();
  const out: Zone[] = [];
  for (const n of names) {
    try {
      out.push(await readZone(n));
    } catch (e) {
      if (!isBerthError(e, 'INVALID_ARGUMENT')) throw e; // a stray, badly named file is not a zone
    }
  }
  return out;
}

/** Subnets the host already routes (its own networks): a zone must not shadow them. */
async function hostSubnets(): Promise<Subnet[]> {
  const r = await run(['ip', '-4', '-o', 'route', 'show'], { reject: false, timeoutMs: 5000 });
  const out: Subnet[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)\s/.exec(line);
    if (m && Number(m[2]) >= 8 && !line.includes(' dev bz-')) out.push({ base: parseIPv4(m[1] as string), prefix: Number(m[2]) });
  }
  return out;
}

/** The first 10.199.N.0/24 no zone and no host route uses. */
function pickSubnet(used: readonly Subnet[]): string {
  for (let n = 0; n < 256; n++) {
    const s: Subnet = { base: parseIPv4(`10.199.${n}.0`), prefix: 24 };
    if (!used.some((u) => overlaps(u, s))) return formatSubnet(s);
  }
  throw new BerthError('NO_SPACE', 'no free subnet in 10.199.0.0/16: give one with --subnet');
}

async function writeZoneFiles(z: Zone): Promise<void> {
  await ensureDir(zoneHostsDir(z.name));
  await ensureDir(join(zoneDir(z.name), 'addrs')); // address claims (network/attach.ts)
  await writeFileAtomic(join(zoneDir(z.name), 'zone.nft'), zoneNft(z));
  await writeFileAtomic(zoneUnitPath(z.name), serializeUnit(zoneUnitFile(z, zoneUnitPath(z.name))));
  await writeFileAtomic(zoneFile(z.name), serializeZone(z));
}

async function createLocked(name: string, subnet?: string): Promise<Zone> {
  if (existsSync(zoneFile(name))) throw new BerthError('ALREADY_EXISTS', `network zone ${name} already exists`, { details: { zone: name } });
  const zones = await listZones();
  const used = [...zones.map((z) => parseSubnet(z.subnet)), ...(await hostSubnets())];
  let chosen: string;
  if (subnet !== undefined) {
    const s = parseSubnet(subnet);
    const other = zones.find((z) => overlaps(parseSubnet(z.subnet), s));
    if (other) throw new BerthError('ALREADY_EXISTS', `--subnet ${subnet} overlaps zone ${other.name} (${other.subnet})`, { details: { zone: other.name } });
    if ((await hostSubnets()).some((h) => overlaps(h, s))) throw new BerthError('ALREADY_EXISTS', `--subnet ${subnet} overlaps a network this host already routes (ip route)`);
    chosen = formatSubnet(s);
  } else chosen = pickSubnet(used);
  const z = zoneOf(name, chosen);
  try {
    await writeZoneFiles(z);
    // A unit systemd has not loaded is read fresh from disk (by this `show`): no reload,
    // unless systemd still holds an older copy (a zone of this name was loaded before).
    if (systemdRunning()) {
      const r = await run(['systemctl', 'show', '-p', 'NeedDaemonReload', '--value', '--', zoneUnit(name)], { reject: false, timeoutMs: 30_000 });
      if (r.exitCode !== 0 || r.stdout.trim() !== 'no') await run(['systemctl', 'daemon-reload'], { timeoutMs: 60_000, errorCode: 'FAILED_PRECONDITION' });
    }
  } catch (e) {
    await removeZoneFiles(name).catch(() => {});
    throw e;
  }
  return z;
}

export async function createZone(name: string, opts: { subnet?: string } = {}): Promise<Zone> {
  validateZoneName(name);
  if (RESERVED_NETWORK_NAMES.includes(name)) throw new BerthError('INVALID_ARGUMENT', `"${name}" is a network mode, not a zone name`);
  requireTools();
  return withLock(networkLock(), () => createLocked(name, opts.subnet));
}

/** The zone a machine joins; the default zone is created on first use. Call under networkLock(). */
export async function zoneForMachine(name: string): Promise<Zone> {
  try {
    return await readZone(name);
  } catch (e) {
    if (isBerthError(e, 'NOT_FOUND') && name === DEFAULT_ZONE) return createLocked(name);
    throw e;
  }
}

async function removeZoneFiles(name: string): Promise<void> {
  await rm(zoneFile(name), { force: true });
  await rm(zoneUnitPath(name), { force: true });
  await rm(zoneDir(name), { recursive: true, force: true });
}

/** Stops the zone's unit, deletes its bridge and rules, removes its files. */
export async function removeZone(name: string, machinesIn: (zone: string) => Promise<string[]>): Promise<void> {
  await readZone(name);
  await withLock(networkLock(), async () => {
    // Creates claim addresses without the lock: the claims directory is moved aside first,
    // so a claim either landed before (and names its machine here) or fails (ENOENT).
    const claims = join(zoneDir(name), 'addrs');
    const aside = `${claims}.removing`;
    const moved = await rename(claims, aside).then(() => true, () => false);
    const claimants = moved ? (await readdir(aside).catch(() => [] as string[])).filter((f) => !f.startsWith('.')) : [];
    const users = [...new Set([...(await machinesIn(name)), ...(await Promise.all(claimants.map(async (f) => (await readFile(join(aside, f), 'utf8').catch(() => '')).trim()))).filter(Boolean)])].sort();
    if (users.length > 0) {
      if (moved) await rename(aside, claims).catch(() => {});
      throw new BerthError('FAILED_PRECONDITION', `network zone ${name} is in use by ${users.join(', ')}: remove ${users.length > 1 ? 'them' : 'it'} first`, { details: { zone: name, machines: users } });
    }
    const z = await readZone(name);
    if (systemdRunning()) await run(['systemctl', 'stop', '--', zoneUnit(name)], { reject: false, timeoutMs: 60_000 });
    else await stopDirectResolver(z);
    await run(['ip', 'link', 'delete', z.bridge], { reject: false, timeoutMs: 10_000 });
    await run(['nft', '-f', '-'], { input: dropTableNft(zoneTable(name)), reject: false, timeoutMs: 10_000 });
    await removeZoneFiles(name);
    if (systemdRunning()) {
      await run(['systemctl', 'daemon-reload'], { reject: false, timeoutMs: 60_000 });
      await run(['systemctl', 'reset-failed', '--', zoneUnit(name)], { reject: false, timeoutMs: 10_000 });
    }
  });
}

export interface ZoneState {
  zone: Zone;
  unit: string;
  /** The unit's ActiveState ("active" while the bridge and resolver are up). */
  state: string;
  bridgeUp: boolean;
}

export async function zoneState(z: Zone): Promise<ZoneState> {
  const unit = zoneUnit(z.name);
  let state = 'unknown';
  if (systemdRunning()) {
    const r = await run(['systemctl', 'show', '-p', 'ActiveState', '--value', '--', unit], { reject: false, timeoutMs: 10_000 });
    state = r.stdout.trim() || 'unknown';
  }
  const l = await run(['ip', '-o', 'link', 'show', 'dev', z.bridge], { reject: false, timeoutMs: 5000 });
  return { zone: z, unit, state, bridgeUp: l.exitCode === 0 };
}

/**
 * Brings the zone up without systemd as PID 1 (attached `berth run` on such a host): the
 * unit's commands, run by berth, and dnsmasq as a daemon with the unit's pid file.
 */
export async function startZoneDirect(z: Zone): Promise<void> {
  for (const c of zoneSetup(z)) await run(c.argv, { reject: !c.ignoreFailure, timeoutMs: 10_000, errorCode: 'FAILED_PRECONDITION' });
  if (await resolverAlive(z)) return;
  await run(dnsmasqArgv(z), { timeoutMs: 10_000, errorCode: 'FAILED_PRECONDITION' });
}

/** The zone's dnsmasq, from its pid file, is running. */
async function resolverAlive(z: Zone): Promise<boolean> {
  const pid = (await readFile(zonePidFile(z.name), 'utf8').catch(() => '')).trim();
  if (!/^\d+$/.test(pid)) return false;
  return (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim() === 'dnsmasq';
}

async function stopDirectResolver(z: Zone): Promise<void> {
  const pid = (await readFile(zonePidFile(z.name), 'utf8').catch(() => '')).trim();
  if (/^\d+$/.test(pid)) {
    try {
      const comm = await readFile(`/proc/${pid}/comm`, 'utf8');
      if (comm.trim() === 'dnsmasq') process.kill(Number(pid), 'SIGTERM');
    } catch {
      // not running
    }
  }
}

/** Makes sure the zone is up before a machine that is not a unit (attached run) starts. */
export async function ensureZoneRunning(z: Zone): Promise<void> {
  if (await resolverAlive(z) && existsSync(`/sys/class/net/${z.bridge}`)) return;
  if (systemdRunning()) await run(['systemctl', 'start', '--', zoneUnit(z.name)], { timeoutMs: 60_000, errorCode: 'FAILED_PRECONDITION' });
  else await startZoneDirect(z);
}
