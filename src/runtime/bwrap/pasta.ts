/**
 * @module runtime/bwrap/pasta
 * Published ports → pasta's `-t`/`-u` specs (`ADDR/HOSTPORT:CONTAINERPORT`, comma-joined).
 * Pure. pasta binds the host side in the user's network namespace, so a port below
 * net.ipv4.ip_unprivileged_port_start is refused here with the reason instead of being
 * skipped by pasta with a warning in the journal.
 * Meeting src/network (issue 8): that module should own PortMapping parsing (`-p`) and the
 * policy checks; this file then keeps only the rendering into pasta's syntax.
 */
import { isIP } from 'node:net';
import { BerthError } from '../../base/errors.ts';
import type { PortMapping } from './types.ts';

export interface PastaPorts {
  tcp: string;
  udp: string;
}

function checkPort(field: string, n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new BerthError('INVALID_ARGUMENT', `${field}: ${n} is not a port number (1-65535)`, { details: { field } });
  }
  return n;
}

export function toPastaPorts(publish: readonly PortMapping[], opts: { unprivilegedPortStart: number }): PastaPorts {
  const seen = new Set<string>();
  const specs: Record<'tcp' | 'udp', string[]> = { tcp: [], udp: [] };
  for (const [i, p] of publish.entries()) {
    const field = `published port ${i + 1}`;
    const host = checkPort(`${field} (host)`, p.hostPort);
    const inner = checkPort(`${field} (container)`, p.containerPort);
    if (p.protocol !== 'tcp' && p.protocol !== 'udp') {
      throw new BerthError('INVALID_ARGUMENT', `${field}: protocol "${String(p.protocol)}" is not tcp or udp`, { details: { field } });
    }
    if (p.hostIp !== undefined && isIP(p.hostIp) === 0) {
      throw new BerthError('INVALID_ARGUMENT', `${field}: "${p.hostIp}" is not an IP address`, { details: { field } });
    }
    if (host < opts.unprivilegedPortStart) {
      throw new BerthError('PERMISSION_DENIED', `${field}: host port ${host} is below net.ipv4.ip_unprivileged_port_start (${opts.unprivilegedPortStart}); a user's container can publish only ports >= ${opts.unprivilegedPortStart}`, {
        details: { field, port: host, reason: 'privileged-port' },
      });
    }
    const key = `${p.protocol}/${p.hostIp ?? '*'}/${host}`;
    if (seen.has(key)) throw new BerthError('INVALID_ARGUMENT', `${field}: host port ${p.protocol} ${host} is published twice`, { details: { field } });
    seen.add(key);
    specs[p.protocol].push(`${p.hostIp === undefined ? '' : `${p.hostIp}/`}${host}:${inner}`);
  }
  return { tcp: specs.tcp.join(',') || 'none', udp: specs.udp.join(',') || 'none' };
}
