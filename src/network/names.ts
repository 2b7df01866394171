/**
 * @module network/names
 * Every kernel and file name berth's networking uses, derived from the zone and machine
 * names so an admin can tell them apart from other software's at a glance:
 *
 *   bz-ZONE                       the zone's bridge (not vz-: networkd's 80-container-vz.network
 *                                 would otherwise run DHCP on it)
 *   be-MACHINE / bx<hash>         the host end of a machine's veth (≤ 15 characters)
 *   berth-MACHINE                 the machine's network namespace (/run/netns/berth-MACHINE)
 *   eth0                          the machine's end, inside its namespace
 *   table ip berth-zone-ZONE      the zone's NAT, isolation and loopback-guard rules
 *   table ip berth-m-MACHINE      a running machine's published ports
 *   berth-zone-ZONE.service       the zone: bridge, rules and its dnsmasq resolver
 *   /etc/berth/zones/ZONE.zone    the zone's definition (subnet)
 *   /etc/berth/zones/ZONE/        generated files: zone.nft, hosts.d/MACHINE (DNS names)
 *   /etc/berth/machines/MACHINE/  the machine's attachment (network.conf) and generated files
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { BerthError } from '../base/errors.ts';

export const DEFAULT_ZONE = 'berth';

/** Zone names: lowercase, short enough for "bz-NAME" (IFNAMSIZ 16). */
export function validateZoneName(z: string, field = 'zone name'): string {
  if (!/^[a-z0-9][a-z0-9_-]{0,11}$/.test(z)) {
    throw new BerthError('INVALID_ARGUMENT', `${field} "${z}" is not valid: 1-12 characters of a-z, 0-9, "-", "_", starting with a letter or digit`, { details: { zone: z } });
  }
  return z;
}

/** Mode words that are not zone names. */
export const RESERVED_NETWORK_NAMES = ['none', 'host', 'private', 'bridge', 'default', 'veth', 'container'];

export function bridgeName(zone: string): string {
  return `bz-${validateZoneName(zone)}`;
}

/** The host end of a machine's veth: readable for short names, hashed otherwise. */
export function hostIfName(machine: string): string {
  if (/^[A-Za-z0-9_-]{1,12}$/.test(machine)) return `be-${machine}`;
  return `bx${createHash('sha256').update(machine).digest('hex').slice(0, 13)}`;
}

export function netnsName(machine: string): string {
  return `berth-${machine}`;
}

export function netnsPath(machine: string): string {
  return `/run/netns/${netnsName(machine)}`;
}

export const CONTAINER_IF = 'eth0';

export function zoneTable(zone: string): string {
  return `berth-zone-${zone}`;
}

export function machineTable(machine: string): string {
  return `berth-m-${machine}`;
}

export function zoneUnit(zone: string): string {
  return `berth-zone-${validateZoneName(zone)}.service`;
}

function prefix(): string {
  return process.env.BERTH_SYSTEMD_ROOT ?? '';
}

/** /etc/berth (BERTH_SYSTEMD_ROOT prefixes it in tests, like the systemd paths). */
export function etcDir(): string {
  return `${prefix()}/etc/berth`;
}

export function zonesDir(): string {
  return join(etcDir(), 'zones');
}

export function zoneFile(zone: string): string {
  return join(zonesDir(), `${validateZoneName(zone)}.zone`);
}

export function zoneDir(zone: string): string {
  return join(zonesDir(), validateZoneName(zone));
}

/** dnsmasq's --hostsdir for the zone: one hosts file per machine. */
export function zoneHostsDir(zone: string): string {
  return join(zoneDir(zone), 'hosts.d');
}

export function machinesNetDir(): string {
  return join(etcDir(), 'machines');
}

export function machineNetDir(machine: string): string {
  return join(machinesNetDir(), machine);
}

export function zoneUnitPath(zone: string): string {
  return `${prefix()}/etc/systemd/system/${zoneUnit(zone)}`;
}
