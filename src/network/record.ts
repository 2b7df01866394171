/**
 * @module network/record
 * The two hand-readable records networking keeps (INI, like systemd's own files), and
 * their strict readers: a zone's definition (/etc/berth/zones/ZONE.zone) and a machine's
 * attachment (/etc/berth/machines/NAME/network.conf). Everything else in those directories
 * is generated from these. Pure.
 */
import { BerthError } from '../base/errors.ts';
import { parseUnit, serializeUnit, UnitFile } from '../unit/index.ts';
import { formatIPv4, isHostAddress, parseIPv4, parseSubnet } from './ipv4.ts';
import { hostIfName, netnsName, validateZoneName } from './names.ts';
import { parsePublish, type PortMapping } from './ports.ts';
import { zoneOf } from './render.ts';
import type { Attachment, HostEntry, Zone } from './types.ts';

export function serializeZone(z: Zone): string {
  const u = new UnitFile();
  u.comment(`berth network zone ${z.name}: bridge ${z.bridge}, gateway and resolver ${z.gateway}.`);
  u.comment('Remove it with `berth zone rm`, not by hand (the bridge and rules would stay).');
  u.set('Zone', 'Name', z.name).set('Zone', 'Subnet', z.subnet);
  return serializeUnit(u);
}

export function parseZone(text: string, path: string): Zone {
  const u = parseUnit(text, { path });
  const name = validateZoneName(u.get('Zone', 'Name') ?? '', `${path}: Name=`);
  const subnet = u.get('Zone', 'Subnet') ?? '';
  parseSubnet(subnet, `${path}: Subnet=`);
  return zoneOf(name, subnet);
}

/** Docker's `-p` spelling of a decided mapping, which parsePublish reads back. */
export function publishValue(m: PortMapping): string {
  return `${m.hostIp ? `${m.hostIp}:` : ''}${m.hostPort}:${m.containerPort}/${m.proto}`;
}

export function serializeAttachment(a: Attachment): string {
  const u = new UnitFile();
  u.comment(`Network attachment of machine ${a.machine}, written by berth at create time.`);
  u.comment('The other files in this directory are generated from it and from the zone.');
  const s = 'Network';
  u.set(s, 'Zone', a.zone.name).set(s, 'Address', a.address);
  for (const p of a.ports) u.add(s, 'Publish', publishValue(p));
  for (const al of a.aliases) u.add(s, 'Alias', al);
  for (const d of a.dns) u.add(s, 'DNS', d);
  for (const h of a.addHosts) u.add(s, 'AddHost', `${h.name}:${h.ip}`);
  return serializeUnit(u);
}

export function parseAttachment(text: string, path: string, machine: string, zone: Zone): Attachment {
  const u = parseUnit(text, { path });
  const s = 'Network';
  if (u.get(s, 'Zone') !== zone.name) throw new BerthError('CORRUPT', `${path}: Zone=${u.get(s, 'Zone') ?? ''} is not ${zone.name}`);
  const address = formatIPv4(parseIPv4(u.get(s, 'Address') ?? '', `${path}: Address=`));
  if (!isHostAddress(parseSubnet(zone.subnet), parseIPv4(address))) throw new BerthError('CORRUPT', `${path}: Address=${address} is not a host address of ${zone.subnet}`);
  const ports = u.getAll(s, 'Publish').flatMap((p) => parsePublish(p, `${path}: Publish=`));
  if (ports.some((p) => p.hostPort === 0)) throw new BerthError('CORRUPT', `${path}: a Publish= line has no host port`);
  const addHosts: HostEntry[] = u.getAll(s, 'AddHost').map((v) => parseAddHost(v, `${path}: AddHost=`));
  return {
    machine, zone, address, hostIf: hostIfName(machine), netns: netnsName(machine), ports,
    aliases: u.getAll(s, 'Alias').map((a) => validateDnsName(a, `${path}: Alias=`)),
    dns: u.getAll(s, 'DNS').map((d) => formatIPv4(parseIPv4(d, `${path}: DNS=`))),
    addHosts,
  };
}

/** Names a machine can be found by: DNS labels (RFC 1123), dots between them. */
export function validateDnsName(n: string, field = '--network-alias'): string {
  if (n.length > 253 || !/^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/.test(n)) {
    throw new BerthError('INVALID_ARGUMENT', `${field} "${n}" is not a valid host name`, { details: { value: n } });
  }
  return n;
}

/** `--add-host NAME:IP` (Docker); "host-gateway" is resolved by the caller. */
export function parseAddHost(v: string, field = '--add-host'): HostEntry {
  const i = v.indexOf(':');
  if (i <= 0) throw new BerthError('INVALID_ARGUMENT', `${field} "${v}": expected NAME:IP`, { details: { value: v } });
  const name = validateDnsName(v.slice(0, i), field);
  const ipRaw = v.slice(i + 1);
  const ip = ipRaw === 'host-gateway' ? ipRaw : formatIPv4(parseIPv4(ipRaw, field));
  return { name, ip };
}
