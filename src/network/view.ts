/**
 * @module network/view
 * A machine's networking as `berth status`, `inspect` and `port` show it, in one stable
 * shape (the JSON field names are part of berth's interface).
 */
import { parseSubnet } from './ipv4.ts';
import { formatMapping } from './ports.ts';
import type { Attachment } from './types.ts';

export interface NetworkView {
  mode: 'zone' | 'host' | 'private' | 'link';
  zone?: string;
  bridge?: string;
  /** "10.199.0.5/24" */
  address?: string;
  gateway?: string;
  /** Host end of the machine's veth. */
  veth?: string;
  netns?: string;
  ports: Array<{ hostIp: string; hostPort: number; containerPort: number; protocol: 'tcp' | 'udp' }>;
  aliases: string[];
  dns: string[];
}

export function attachmentView(a: Attachment): NetworkView {
  return {
    mode: 'zone',
    zone: a.zone.name,
    bridge: a.zone.bridge,
    address: `${a.address}/${parseSubnet(a.zone.subnet).prefix}`,
    gateway: a.zone.gateway,
    veth: a.hostIf,
    netns: a.netns,
    ports: a.ports.map((p) => ({ hostIp: p.hostIp ?? '0.0.0.0', hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.proto })),
    aliases: [...a.aliases],
    dns: a.dns.length ? [...a.dns] : [a.zone.gateway],
  };
}

/** `berth port` lines, Docker's format: `80/tcp -> 0.0.0.0:8080`. */
export function portLines(v: NetworkView): string[] {
  return v.ports.map((p) => `${p.containerPort}/${p.protocol} -> ${p.hostIp}:${p.hostPort}`);
}

/** One line for `berth status`: "zone berth, 10.199.0.5/24 via 10.199.0.1, veth be-web". */
export function viewLine(v: NetworkView): string {
  if (v.mode !== 'zone') return v.mode === 'private' ? 'private (loopback only)' : v.mode === 'link' ? 'private, unconfigured veth' : 'host';
  return `zone ${v.zone}, ${v.address} via ${v.gateway}, veth ${v.veth}`;
}

export { formatMapping };
