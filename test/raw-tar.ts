/**
 * @module test/raw-tar
 * Writes tar archives byte by byte for tests: any header field, PAX records with binary
 * values, GNU long names, sparse maps, broken checksums. Not for production use.
 */
export interface RawEntry {
  name: string;
  /** typeflag character; default '0'. */
  type?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  size?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Data bytes (regular files). */
  body?: Buffer | string;
  /** PAX records, written as an 'x' header first; values may be binary. */
  pax?: Array<[string, string | Buffer]>;
  /** 'gnu' writes the GNU magic (no prefix field). */
  magic?: 'ustar' | 'gnu' | 'v7';
  /** Corrupts the checksum. */
  badChecksum?: boolean;
  /** Base-256 encoding for the size field. */
  base256Size?: boolean;
}

function octal(h: Buffer, off: number, len: number, v: number): void {
  h.write(`${v.toString(8).padStart(len - 1, '0')}\0`, off, 'latin1');
}

export function header(e: RawEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(e.name, 0, 100, 'latin1');
  octal(h, 100, 8, e.mode ?? 0o644);
  octal(h, 108, 8, e.uid ?? 0);
  octal(h, 116, 8, e.gid ?? 0);
  if (e.base256Size) {
    h[124] = 0x80;
    h.writeBigUInt64BE(BigInt(size), 124 + 4);
  } else {
    octal(h, 124, 12, size);
  }
  octal(h, 136, 12, e.mtime ?? 1_600_000_000);
  h.write(e.type ?? '0', 156, 'latin1');
  h.write(e.linkname ?? '', 157, 100, 'latin1');
  const magic = e.magic ?? 'ustar';
  if (magic === 'ustar') h.write('ustar\x0000', 257, 'latin1');
  else if (magic === 'gnu') h.write('ustar  \0', 257, 'latin1');
  octal(h, 329, 8, e.devmajor ?? 0);
  octal(h, 337, 8, e.devminor ?? 0);
  h.write('        ', 148, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  if (e.badChecksum) sum += 1;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

function padded(b: Buffer): Buffer {
  const pad = (512 - (b.length % 512)) % 512;
  return pad ? Buffer.concat([b, Buffer.alloc(pad)]) : b;
}

export function paxData(records: Array<[string, string | Buffer]>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of records) {
    const val = Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8');
    const rest = Buffer.concat([Buffer.from(` ${k}=`, 'utf8'), val, Buffer.from('\n')]);
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
    parts.push(Buffer.from(String(len)), rest);
  }
  return Buffer.concat(parts);
}

/** A complete archive (with the two end-of-archive blocks unless `noEnd`). */
export function rawTar(entries: RawEntry[], opts: { noEnd?: boolean } = {}): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    if (e.pax) {
      const d = paxData(e.pax);
      out.push(header({ name: 'PaxHeaders/x', type: 'x' }, d.length), padded(d));
    }
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(e.body) ? e.body : Buffer.from(e.body, 'utf8');
    out.push(header(e, e.size ?? body.length));
    if (body.length) out.push(padded(body));
  }
  if (!opts.noEnd) out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

/** A GNU long-name ('L') or long-link ('K') pseudo entry followed by the real entry. */
export function gnuLong(kind: 'L' | 'K', value: string): Buffer {
  const d = Buffer.from(`${value}\0`, 'utf8');
  return Buffer.concat([header({ name: '././@LongLink', type: kind, magic: 'gnu' }, d.length), padded(d)]);
}
