/**
 * @module network/ports
 * Published ports with Docker's `-p` syntax, and the checks that keep them from colliding:
 * with another machine's publications (from the records) and with host processes already
 * listening (from /proc/net/{tcp,udp}{,6}, parsed here). Pure.
 *
 *   -p 80                 container 80/tcp on a free host port, all host addresses
 *   -p 8080:80            host 8080 → container 80
 *   -p 127.0.0.1:8080:80  loopback only
 *   -p 127.0.0.1::80      loopback, free host port
 *   -p 8080-8082:80-82    ranges of equal length (expanded one by one)
 *   -p 5353:53/udp        UDP
 */
import { BerthError } from '../base/errors.ts';
import { formatIPv4, isLoopback, parseIPv4 } from './ipv4.ts';

export type Proto = 'tcp' | 'udp';

export interface PortRequest {
  /** A host IPv4 address to publish on; absent: every host address (and 127.0.0.1). */
  hostIp?: string;
  /** 0: berth picks a free host port. */
  hostPort: number;
  containerPort: number;
  proto: Proto;
}

/** A publication with its host port decided. */
export type PortMapping = PortRequest;

/** The most ports one `-p` range may expand to. */
export const MAX_RANGE = 1000;

/** Where berth picks host ports for `-p CTRPORT` (Linux's default ephemeral range). */
export const PICK_RANGE: readonly [number, number] = [32768, 60999];

const bad = (value: string, why: string, flag = '-p'): never => {
  throw new BerthError('INVALID_ARGUMENT', `${flag} "${value}": ${why}`, { details: { flag, value } });
};

function port(raw: string, value: string, what: string, allowZero: boolean): number {
  if (!/^\d{1,5}$/.test(raw)) return bad(value, `${what} "${raw}" is not a port number`);
  const n = Number(raw);
  if (n > 65535 || (n === 0 && !allowZero)) bad(value, `${what} ${n} is out of range (1-65535)`);
  return n;
}

function range(raw: string, value: string, what: string, allowZero: boolean): [number, number] {
  const [a = '', b, ...rest] = raw.split('-');
  if (rest.length > 0) bad(value, `${what} "${raw}" is not PORT or PORT-PORT`);
  const lo = port(a, value, what, allowZero);
  const hi = b === undefined ? lo : port(b, value, what, false);
  if (hi < lo) bad(value, `${what} range ${raw} is reversed`);
  if (hi - lo + 1 > MAX_RANGE) bad(value, `${what} range ${raw} has more than ${MAX_RANGE} ports`);
  return [lo, hi];
}

/** One `-p` value → one request per port (ranges expanded). */
export function parsePublish(value: string, flag = '-p'): PortRequest[] {
  if (value.startsWith('[') || (value.match(/:/g) ?? []).length > 2) {
    throw new BerthError('UNSUPPORTED', `${flag} "${value}": IPv6 host addresses are not supported (zones are IPv4)`, { details: { flag, value } });
  }
  const slash = value.lastIndexOf('/');
  const body = slash < 0 ? value : value.slice(0, slash);
  const protoRaw = slash < 0 ? 'tcp' : value.slice(slash + 1).toLowerCase();
  if (protoRaw !== 'tcp' && protoRaw !== 'udp') bad(value, `protocol "${protoRaw}" is not tcp or udp`, flag);
  const proto = protoRaw as Proto;
  const parts = body.split(':');
  let hostIp: string | undefined;
  let hostRaw = '';
  let ctrRaw: string;
  if (parts.length === 1) ctrRaw = parts[0] as string;
  else if (parts.length === 2) [hostRaw, ctrRaw] = parts as [string, string];
  else {
    const [ip = '', h = '', c = ''] = parts;
    hostIp = ip === '' ? undefined : formatIPv4(parseIPv4(ip, `${flag} host address`));
    if (hostIp === '0.0.0.0') hostIp = undefined;
    hostRaw = h;
    ctrRaw = c;
  }
  if (ctrRaw === '') bad(value, 'container port is missing', flag);
  const [c0, c1] = range(ctrRaw, value, 'container port', false);
  const n = c1 - c0 + 1;
  let h0 = 0;
  if (hostRaw !== '') {
    const [a, b] = range(hostRaw, value, 'host port', true);
    if (a === 0 && b === 0) h0 = 0;
    else {
      if (b - a + 1 !== n) bad(value, `host range ${hostRaw} and container range ${ctrRaw} differ in length`, flag);
      h0 = a;
    }
  }
  const out: PortRequest[] = [];
  for (let i = 0; i < n; i++) {
    const r: PortRequest = { hostPort: h0 === 0 ? 0 : h0 + i, containerPort: c0 + i, proto };
    if (hostIp !== undefined) r.hostIp = hostIp;
    out.push(r);
  }
  return out;
}

/** The image's ExposedPorts keys ("80/tcp", "53/udp", "8080") → requests on free host ports (`-P`). */
export function exposedToRequests(exposed: Readonly<Record<string, unknown>> | undefined): PortRequest[] {
  const out: PortRequest[] = [];
  for (const k of Object.keys(exposed ?? {})) {
    const parts = k.split('/');
    const [p = '', proto = 'tcp'] = parts;
    if (parts.length > 2 || !/^\d{1,5}$/.test(p) || Number(p) < 1 || Number(p) > 65535 || (proto !== 'tcp' && proto !== 'udp')) {
      throw new BerthError('INVALID_ARGUMENT', `image ExposedPorts entry "${k}" is not PORT[/tcp|/udp]`);
    }
    out.push({ hostPort: 0, containerPort: Number(p), proto });
  }
  return out;
}

/** Docker's notation: `0.0.0.0:8080->80/tcp`. */
export function formatMapping(m: PortMapping): string {
  return `${m.hostIp ?? '0.0.0.0'}:${m.hostPort}->${m.containerPort}/${m.proto}`;
}

/** Two publications that cannot both hold: same protocol and host port, overlapping addresses. */
export function clash(a: PortRequest, b: PortRequest): boolean {
  return a.proto === b.proto && a.hostPort === b.hostPort && (a.hostIp === undefined || b.hostIp === undefined || a.hostIp === b.hostIp);
}

export interface Listener {
  proto: Proto;
  /** Dotted quad, "::" style hex for IPv6 ("v6:" + 32 hex digits). */
  addr: string;
  port: number;
}

/**
 * Sockets bound by host processes, from the text of /proc/net/tcp, tcp6, udp or udp6.
 * TCP: state 0A (LISTEN); UDP: every bound socket (state 07).
 */
export function parseProcNet(text: string, proto: Proto): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = f[1];
    const st = f[3];
    if (!local || !st) continue;
    if (proto === 'tcp' && st !== '0A') continue;
    if (proto === 'udp' && st !== '07') continue;
    const [hex = '', p = ''] = local.split(':');
    const portNum = parseInt(p, 16);
    if (!Number.isFinite(portNum)) continue;
    let addr: string;
    if (hex.length === 8) {
      // little-endian u32 on x86/arm64
      const n = parseInt(hex, 16);
      addr = formatIPv4(((n & 255) << 24 | ((n >>> 8) & 255) << 16 | ((n >>> 16) & 255) << 8 | (n >>> 24)) >>> 0);
    } else addr = `v6:${hex.toLowerCase()}`;
    out.push({ proto, addr, port: portNum });
  }
  return out;
}

const V6_ANY = `v6:${'0'.repeat(32)}`;
const V6_LOOPBACK = `v6:${'0'.repeat(24)}01000000`;
const V6_MAPPED_PREFIX = `v6:${'0'.repeat(16)}ffff0000`;

/** The host process listening where `r` would publish, if any. */
export function listenerClash(r: PortRequest, listeners: readonly Listener[]): Listener | undefined {
  return listeners.find((l) => {
    if (l.proto !== r.proto || l.port !== r.hostPort) return false;
    if (r.hostIp === undefined) return true;
    if (l.addr === '0.0.0.0' || l.addr === V6_ANY || l.addr === r.hostIp) return true;
    if (isLoopback(parseIPv4(r.hostIp)) && l.addr === V6_LOOPBACK) return true;
    return l.addr.startsWith(V6_MAPPED_PREFIX) && l.addr.length === 3 + 32 && mappedV4(l.addr) === r.hostIp;
  });
}

function mappedV4(addr: string): string {
  const n = parseInt(addr.slice(-8), 16);
  return formatIPv4(((n & 255) << 24 | ((n >>> 8) & 255) << 16 | ((n >>> 16) & 255) << 8 | (n >>> 24)) >>> 0);
}

/** A free host port for `r` in PICK_RANGE, avoiding `used` (other publications) and listeners. */
export function pickHostPort(r: PortRequest, used: readonly PortRequest[], listeners: readonly Listener[]): number {
  for (let p = PICK_RANGE[0]; p <= PICK_RANGE[1]; p++) {
    const cand = { ...r, hostPort: p };
    if (used.some((u) => clash(u, cand))) continue;
    if (listenerClash(cand, listeners)) continue;
    return p;
  }
  throw new BerthError('NO_SPACE', `no free host port for ${r.containerPort}/${r.proto} in ${PICK_RANGE[0]}-${PICK_RANGE[1]}`);
}
