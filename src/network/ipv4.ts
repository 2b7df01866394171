/**
 * @module network/ipv4
 * IPv4 addresses and subnets as numbers: parsing (strict dotted quads, no leading zeros, no
 * shorthand), CIDR arithmetic and the first-free allocation a zone uses. Pure.
 */
import { BerthError } from '../base/errors.ts';

export interface Subnet {
  /** Network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

const bad = (field: string, value: string, why: string): never => {
  throw new BerthError('INVALID_ARGUMENT', `${field} "${value}": ${why}`, { details: { field, value } });
};

/** Parses a dotted quad; refuses "1.2.3", "01.2.3.4", "1.2.3.4 " and the like. */
export function parseIPv4(s: string, field = 'address'): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return bad(field, s, 'is not an IPv4 address (a.b.c.d)');
  let n = 0;
  for (const part of m.slice(1)) {
    if (part.length > 1 && part.startsWith('0')) bad(field, s, 'has a leading zero (ambiguous octal)');
    const v = Number(part);
    if (v > 255) bad(field, s, `octet ${part} is above 255`);
    n = n * 256 + v;
  }
  return n;
}

export function isIPv4(s: string): boolean {
  try {
    parseIPv4(s);
    return true;
  } catch {
    return false;
  }
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** `10.199.0.0/24`; the address must be the network address; prefix 8..29. */
export function parseSubnet(s: string, field = '--subnet'): Subnet {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  if (!m) return bad(field, s, 'expected an IPv4 subnet like 10.199.1.0/24');
  const base = parseIPv4(m[1] as string, field);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 29) bad(field, s, 'prefix length must be between 8 and 29');
  if ((base & ~mask(prefix)) >>> 0 !== 0) bad(field, s, `is not a network address (did you mean ${formatIPv4((base & mask(prefix)) >>> 0)}/${prefix}?)`);
  if (base >>> 24 === 127 || base >>> 24 === 0 || base >>> 28 >= 14) bad(field, s, 'is loopback, "this network", multicast or reserved');
  return { base, prefix };
}

export function formatSubnet(s: Subnet): string {
  return `${formatIPv4(s.base)}/${s.prefix}`;
}

export function size(s: Subnet): number {
  return 2 ** (32 - s.prefix);
}

export function contains(s: Subnet, addr: number): boolean {
  return ((addr & mask(s.prefix)) >>> 0) === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

/** The zone's own address on its bridge: the first host address. */
export function gatewayOf(s: Subnet): number {
  return s.base + 1;
}

/** True for an address a machine may have: in the subnet, not network, gateway or broadcast. */
export function isHostAddress(s: Subnet, addr: number): boolean {
  return contains(s, addr) && addr !== s.base && addr !== gatewayOf(s) && addr !== s.base + size(s) - 1;
}

/** The lowest host address not in `taken`, or undefined when the subnet is full. */
export function firstFree(s: Subnet, taken: ReadonlySet<number>): number | undefined {
  for (let a = s.base + 2; a < s.base + size(s) - 1; a++) if (!taken.has(a)) return a;
  return undefined;
}

export function isLoopback(addr: number): boolean {
  return addr >>> 24 === 127;
}
