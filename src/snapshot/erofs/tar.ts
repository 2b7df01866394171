/**
 * @module snapshot/erofs/tar
 * A push parser for untrusted layer tars: feed it chunks, it calls the sink synchronously
 * with each entry's header, its file bytes in logical order (holes of sparse files as
 * `hole(n)`), and the entry's end. Being the only parser of the stream, what it reads is by
 * definition what gets written: there is no second parser to disagree with.
 *
 * Reads ustar/POSIX (prefix field), GNU (`L` long names, `K` long link names, base-256
 * numbers), PAX local headers (path, linkpath, size, uid, gid, mtime with fraction,
 * SCHILY.xattr.* with binary-safe values, LIBARCHIVE.xattr.*) and PAX sparse files
 * (GNU formats 0.0, 0.1 and 1.0). Global PAX headers are ignored, like Go's archive/tar
 * consumers (umoci). Names are kept as byte strings (latin1: one char per byte), so any
 * byte sequence survives unchanged into the image. Anything else — old GNU sparse 'S',
 * volume labels, multivolume, dumpdirs — is reported with type null (the validator refuses).
 * Malformed input (bad checksum, bad numbers, truncation) is CORRUPT.
 */
import { BerthError } from '../../base/errors.ts';

export type EntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'contiguous-file';

export interface TarEntry {
  /** Member name as bytes (latin1 string), PAX/GNU long names applied; not normalised. */
  name: string;
  type: EntryType | null;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  /** Bytes stored in the archive for this entry. */
  size: number;
  /** Logical file size (differs from size for sparse files). */
  realSize: number;
  sparse: boolean;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** xattrs in archive order: name (latin1) → raw value. */
  xattrs: Array<[string, Buffer]>;
}

export interface TarSink {
  entry(e: TarEntry): void;
  /** File bytes, in order (only for regular files). */
  data(b: Buffer): void;
  /** A run of zeros of a sparse file. */
  hole(n: number): void;
  end(): void;
}

const MAX_META = 16 << 20; // PAX / long-name data held in memory
const NO_XATTRS: Array<[string, Buffer]> = [];
const TYPES: Record<string, EntryType> = {
  '0': 'file', '\0': 'file', '1': 'link', '2': 'symlink', '3': 'character-device',
  '4': 'block-device', '5': 'directory', '6': 'fifo', '7': 'contiguous-file',
};

function corrupt(msg: string): BerthError {
  return new BerthError('CORRUPT', `layer is not a valid tar: ${msg}`);
}

function cstr(b: Buffer, start: number, len: number): string {
  let end = start;
  const max = start + len;
  while (end < max && b[end] !== 0) end++;
  return b.toString('latin1', start, end);
}

/** A tar numeric field: octal text, or GNU base-256 when the high bit is set. */
export function parseNumber(b: Buffer, start: number, len: number, what: string): number {
  const first = b[start] as number;
  if (first & 0x80) {
    const neg = first === 0xff;
    let v = 0n;
    for (let i = start; i < start + len; i++) {
      const byte = i === start ? (neg ? 0xff : first & 0x7f) : (b[i] as number);
      v = (v << 8n) | BigInt(byte);
    }
    if (neg) v -= 1n << BigInt(len * 8);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw corrupt(`${what} out of range`);
    return Number(v);
  }
  let i = start;
  const end = start + len;
  while (i < end && b[i] === 0x20) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = b[i] as number;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw corrupt(`${what} is not an octal number`);
    v = v * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) if (b[i] !== 0 && b[i] !== 0x20) throw corrupt(`${what} is not an octal number`);
  if (digits === 0) return 0;
  if (!Number.isSafeInteger(v)) throw corrupt(`${what} out of range`);
  return v;
}

// The header's unsigned byte sum. When the header is 4-byte aligned in its ArrayBuffer (the
// usual case: pipe and socket reads fill fresh buffers, headers sit at multiples of 512), it
// is read as 32-bit words and summed two byte lanes at a time (each lane stays below 2^16:
// 126 words of at most 255), a quarter of a byte loop's iterations, without a copy. Each
// parser keeps its view over the last ArrayBuffer (consecutive headers mostly share one),
// so the view lives and dies with the parser.
interface WordView { buffer?: ArrayBufferLike; words: Uint32Array<ArrayBufferLike> }

function unsignedSum(h: Buffer, o: number, view: WordView): number {
  const at = h.byteOffset + o;
  if ((at & 3) === 0) {
    if (h.buffer !== view.buffer) {
      view.buffer = h.buffer;
      view.words = new Uint32Array(h.buffer, 0, h.buffer.byteLength >>> 2);
    }
    const ckWords = view.words;
    const w0 = at >>> 2;
    let even = 0;
    let odd = 0;
    for (let i = 0; i < 128; i++) {
      if (i === 37) i = 39; // bytes 148..155: the checksum field, counted as spaces
      const w = ckWords[w0 + i] as number;
      even += w & 0x00ff00ff;
      odd += (w >>> 8) & 0x00ff00ff;
    }
    return 8 * 0x20 + (even & 0xffff) + (even >>> 16) + (odd & 0xffff) + (odd >>> 16);
  }
  let sum = 8 * 0x20; // the checksum field counts as spaces
  for (let i = o; i < o + 148; i++) sum += h[i] as number;
  for (let i = o + 156; i < o + 512; i++) sum += h[i] as number;
  return sum;
}

function checksumOk(h: Buffer, o: number, view: WordView): boolean {
  const stored = parseNumber(h, o + 148, 8, 'checksum');
  if (stored === unsignedSum(h, o, view)) return true;
  // some old tars summed signed bytes
  let signed = 8 * 0x20;
  for (let i = 0; i < 512; i++) {
    if (i >= 148 && i < 156) continue;
    const c = h[o + i] as number;
    signed += c > 127 ? c - 256 : c;
  }
  return stored === signed;
}

function decimal(s: string, what: string): number {
  if (!/^[0-9]{1,16}$/.test(s)) throw corrupt(`${what} "${s.slice(0, 40)}" is not a number`);
  const v = Number(s);
  if (!Number.isSafeInteger(v)) throw corrupt(`${what} out of range`);
  return v;
}

/** True when s is empty or ASCII digits only. */
function allDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** PAX time: [-]secs[.frac] → [secs, nsec] (floor semantics for negatives). */
function paxTime(s: string): [number, number] {
  const dot = s.indexOf('.');
  if (s.charCodeAt(0) !== 45 && dot > 0 && dot <= 15 && s.length - dot - 1 <= 9) {
    // digits only: Number() alone would also take " 1", "0x1f" or "1e3"
    const secs = s.slice(0, dot);
    const frac = s.slice(dot + 1);
    if (allDigits(secs) && allDigits(frac)) return [Number(secs), frac === '' ? 0 : Number(frac) * 10 ** (9 - frac.length)];
  }
  const m = /^(-?)([0-9]{1,15})(?:\.([0-9]*))?$/.exec(s);
  if (!m) throw corrupt(`PAX mtime "${s.slice(0, 40)}"`);
  let sec = Number(m[2]);
  let nsec = Number(((m[3] ?? '') + '000000000').slice(0, 9));
  if (m[1] === '-') {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1;
      nsec = 1_000_000_000 - nsec;
    }
  }
  return [sec, nsec];
}

interface Pax {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: [number, number];
  xattrs: Array<[string, Buffer]>;
  sparseName?: string;
  sparseMajor?: string;
  sparseMinor?: string;
  sparseRealSize?: number;
  sparseMap?: number[];
}

/** Reads the "mtime" value b[vs, ve) when it is plain `secs.frac` digits (what GNU tar writes); else undefined. */
function paxTimeBytes(b: Buffer, vs: number, ve: number): [number, number] | undefined {
  let sec = 0;
  let i = vs;
  for (; i < ve && i - vs < 15; i++) {
    const c = b[i] as number;
    if (c === 0x2e) break;
    if (c < 0x30 || c > 0x39) return undefined;
    sec = sec * 10 + (c - 0x30);
  }
  if (i === vs || i >= ve || b[i] !== 0x2e || ve - i - 1 > 9) return undefined;
  let nsec = 0;
  for (let j = i + 1; j < ve; j++) {
    const c = b[j] as number;
    if (c < 0x30 || c > 0x39) return undefined;
    nsec = nsec * 10 + (c - 0x30);
  }
  return [sec, nsec * 10 ** (9 - (ve - i - 1))];
}

/** True when b[s, e) is the ASCII text `key`. */
function bytesAre(b: Buffer, s: number, e: number, key: string): boolean {
  if (e - s !== key.length) return false;
  for (let i = 0; i < key.length; i++) if (b[s + i] !== key.charCodeAt(i)) return false;
  return true;
}

/**
 * LIBARCHIVE.xattr.NAME=VALUE: NAME percent-encoded UTF-8 (raw bytes above 0x7f refused),
 * VALUE RFC 4648 base64 (at most two '=' at the end, nothing else outside the alphabet).
 * Strict, so that native/erofs.c reads exactly the same bytes: Node's base64 decoder skips
 * what it does not know, and decodeURIComponent's result would be UTF-8 encoded again.
 */
function libarchiveXattr(key: string, value: string): [string, Buffer] {
  const enc = key.slice('LIBARCHIVE.xattr.'.length);
  let name: string;
  try {
    if (/[^\x00-\x7f]/.test(enc)) throw new Error('not ASCII');
    name = Buffer.from(decodeURIComponent(enc), 'utf8').toString('latin1');
  } catch {
    throw corrupt(`PAX xattr name "${key.slice(0, 60)}"`);
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw corrupt(`PAX xattr value of "${key.slice(0, 60)}" is not base64`);
  return [name, Buffer.from(value, 'base64')];
}

/** Parses PAX records ("LEN key=value\n", values binary-safe) in b[start, end). */
export function parsePax(b: Buffer, start = 0, end = b.length): Pax {
  const pax: Pax = { xattrs: [] };
  let off = start;
  let seq00: number[] | undefined;
  while (off < end) {
    if (b[off] === 0) break; // NUL padding after the records
    let len = 0;
    let sp = off;
    for (; sp < end && sp - off <= 16; sp++) {
      const c = b[sp] as number;
      if (c === 0x20) break;
      if (c < 0x30 || c > 0x39) throw corrupt('PAX record length');
      len = len * 10 + (c - 0x30);
    }
    if (sp === off || sp >= end || b[sp] !== 0x20) throw corrupt('PAX record without length');
    const recEnd = off + len;
    if (len < sp - off + 3 || recEnd > end || b[recEnd - 1] !== 0x0a) throw corrupt('PAX record length');
    // '=' by a loop: keys are short, and Buffer#indexOf's call costs more, cold, per entry
    let eq = sp + 1;
    while (eq < recEnd && b[eq] !== 0x3d) eq++;
    if (eq >= recEnd) throw corrupt('PAX record without "="');
    // the value is b[vs, ve): read in place (a view per record costs, cold, per entry)
    const vs = eq + 1;
    const ve = recEnd - 1;
    off = recEnd;
    // the one record most entries carry (GNU tar's mtime), read without making strings
    if (bytesAre(b, sp + 1, eq, 'mtime')) {
      const t = ve > vs ? paxTimeBytes(b, vs, ve) : undefined;
      if (t) {
        pax.mtime = t;
        continue;
      }
    }
    const key = b.toString('latin1', sp + 1, eq);
    if (key.startsWith('SCHILY.xattr.')) {
      pax.xattrs.push([key.slice('SCHILY.xattr.'.length), Buffer.from(b.subarray(vs, ve))]);
      continue;
    }
    if (key.startsWith('LIBARCHIVE.xattr.')) {
      pax.xattrs.push(libarchiveXattr(key, b.toString('latin1', vs, ve)));
      continue;
    }
    if (ve === vs) continue; // an empty value unsets a global default: nothing to unset
    switch (key) {
      case 'path': pax.path = b.toString('latin1', vs, ve); break;
      case 'linkpath': pax.linkpath = b.toString('latin1', vs, ve); break;
      case 'size': pax.size = decimal(b.toString('latin1', vs, ve), 'PAX size'); break;
      case 'uid': pax.uid = decimal(b.toString('latin1', vs, ve), 'PAX uid'); break;
      case 'gid': pax.gid = decimal(b.toString('latin1', vs, ve), 'PAX gid'); break;
      case 'mtime': pax.mtime = paxTime(b.toString('latin1', vs, ve)); break;
      case 'atime': case 'ctime': break;
      case 'GNU.sparse.name': pax.sparseName = b.toString('latin1', vs, ve); break;
      case 'GNU.sparse.major': pax.sparseMajor = b.toString('latin1', vs, ve); break;
      case 'GNU.sparse.minor': pax.sparseMinor = b.toString('latin1', vs, ve); break;
      case 'GNU.sparse.realsize': case 'GNU.sparse.size': pax.sparseRealSize = decimal(b.toString('latin1', vs, ve), key); break;
      case 'GNU.sparse.map':
        pax.sparseMap = b.toString('latin1', vs, ve).split(',').map((x) => decimal(x, key));
        break;
      case 'GNU.sparse.offset': case 'GNU.sparse.numbytes':
        (seq00 ??= []).push(decimal(b.toString('latin1', vs, ve), key));
        pax.sparseMap = seq00;
        break;
      default: break; // atime, ctime, uname, gname, comment, charset...
    }
  }
  return pax;
}

type State = 'header' | 'meta' | 'data' | 'pad' | 'sparsemap' | 'eof' | 'zero';

/**
 * Push parser. `push` throws on malformed input (CORRUPT) and passes on whatever the sink
 * throws; after a throw the parser is unusable. `end()` checks the archive is complete.
 */
export class TarParser {
  private readonly sink: TarSink;
  private state: State = 'header';
  private readonly hdr = Buffer.alloc(512);
  private readonly words: WordView = { words: new Uint32Array(0) };
  private hdrFill = 0;
  // meta (PAX / long name) accumulation
  private metaKind = '';
  private metaBufs: Buffer[] = [];
  private metaFill = 0;
  private metaSize = 0;
  private pax: Pax | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  // current entry data
  private remain = 0; // archive bytes of the entry still to read
  private pad = 0;
  private isFile = false;
  private segments: number[] | undefined; // [off, len, off, len...] for sparse files
  private segIdx = 0;
  private segLeft = 0;
  private logical = 0;
  private realSize = 0;
  private mapText = '';
  entries = 0;
  bytes = 0;

  constructor(sink: TarSink) {
    this.sink = sink;
  }

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    let off = 0;
    const n = chunk.length;
    while (off < n) {
      switch (this.state) {
        case 'header': {
          const take = Math.min(512 - this.hdrFill, n - off);
          if (take === 512) {
            off = this.onHeader(chunk, off);
          } else {
            chunk.copy(this.hdr, this.hdrFill, off, off + take);
            this.hdrFill += take;
            off += take;
            if (this.hdrFill === 512) {
              this.hdrFill = 0;
              this.onHeader(this.hdr, 0);
            }
          }
          break;
        }
        case 'meta': {
          const take = Math.min(this.metaSize - this.metaFill, n - off);
          if (take === this.metaSize) {
            // the whole extended header is in this chunk (the usual case): read it in place
            this.onMeta(chunk, off, off + take);
            off += take;
            break;
          }
          this.metaBufs.push(chunk.subarray(off, off + take));
          this.metaFill += take;
          off += take;
          if (this.metaFill === this.metaSize) {
            const data = this.metaBufs.length === 1 ? (this.metaBufs[0] as Buffer) : Buffer.concat(this.metaBufs);
            this.metaBufs = [];
            this.onMeta(data, 0, data.length);
          }
          break;
        }
        case 'data':
        case 'sparsemap': {
          let take = Math.min(this.remain, n - off);
          if (this.state === 'sparsemap') take = Math.min(take, 512 - (this.mapText.length % 512)); // the map: block by block
          const part = chunk.subarray(off, off + take);
          off += take;
          this.remain -= take;
          if (this.state === 'sparsemap') this.onMapBytes(part);
          else if (this.isFile) this.onData(part);
          if (this.remain === 0 && (this.state as State) === 'data') this.finishData();
          break;
        }
        case 'pad': {
          const take = Math.min(this.pad, n - off);
          off += take;
          this.pad -= take;
          if (this.pad === 0) this.state = 'header';
          break;
        }
        case 'zero': {
          // after one zero block: the second must be zero too
          const take = Math.min(512 - this.hdrFill, n - off);
          for (let i = off; i < off + take; i++) if (chunk[i] !== 0) throw corrupt('garbage after an end-of-archive block');
          this.hdrFill += take;
          off += take;
          if (this.hdrFill === 512) {
            this.hdrFill = 0;
            this.state = 'eof';
          }
          break;
        }
        case 'eof':
          return; // trailing padding: still hashed and counted by the caller
      }
    }
  }

  /** The input ended: the archive must end at an entry boundary. */
  end(): void {
    if (this.state === 'eof' || this.state === 'zero') return;
    if (this.state === 'header' && this.hdrFill === 0 && this.pax === undefined && this.longName === undefined && this.longLink === undefined) return;
    throw corrupt('truncated archive');
  }

  /**
   * Handles the 512-byte header at h[o..o+512] (read in place: no view per header);
   * returns the offset after it.
   */
  private onHeader(h: Buffer, o: number): number {
    let zero = true;
    for (let i = o; i < o + 512; i++) {
      if (h[i] !== 0) {
        zero = false;
        break;
      }
    }
    if (zero) {
      if (this.pax || this.longName !== undefined || this.longLink !== undefined) throw corrupt('extended header without an entry');
      this.state = 'zero';
      return o + 512;
    }
    if (!checksumOk(h, o, this.words)) throw corrupt(`header checksum mismatch at entry ${this.entries + 1}`);
    const flag = String.fromCharCode(h[o + 156] as number);
    let size = parseNumber(h, o + 124, 12, 'size');
    if (size < 0) throw corrupt('negative size');
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > MAX_META) throw new BerthError('HOSTILE_LAYER', `hostile layer: ${size}-byte extended header (limit ${MAX_META})`);
      this.metaKind = flag; // metaBufs is empty: emptied when the last extended header completed
      this.metaFill = 0;
      this.metaSize = size;
      this.pad = (512 - (size % 512)) % 512;
      if (size === 0) this.onMeta(h, 0, 0);
      else this.state = 'meta';
      return o + 512;
    }
    let name = cstr(h, o, 100);
    // POSIX "ustar\0" has the prefix field; GNU "ustar " uses those bytes for other things
    if (h[o + 257] === 0x75 && h[o + 258] === 0x73 && h[o + 259] === 0x74 && h[o + 260] === 0x61 && h[o + 261] === 0x72 && h[o + 262] === 0) {
      const prefix = cstr(h, o + 345, 155);
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    const flagLinks = flag === '1' || flag === '2';
    let linkname = flagLinks ? cstr(h, o + 157, 100) : '';
    const pax = this.pax;
    if (this.longName !== undefined) name = this.longName;
    if (this.longLink !== undefined) linkname = this.longLink;
    this.pax = undefined;
    this.longName = undefined;
    this.longLink = undefined;
    let type: EntryType | null = TYPES[flag] ?? null;
    if (type === 'file' && flag === '\0' && name.endsWith('/')) type = 'directory'; // V7 directories
    let mtime = parseNumber(h, o + 136, 12, 'mtime');
    let mtimeNsec = 0;
    let uid = parseNumber(h, o + 108, 8, 'uid');
    let gid = parseNumber(h, o + 116, 8, 'gid');
    const mode = parseNumber(h, o + 100, 8, 'mode') & 0o7777;
    const devmajor = type === 'character-device' || type === 'block-device' ? parseNumber(h, o + 329, 8, 'devmajor') : 0;
    const devminor = type === 'character-device' || type === 'block-device' ? parseNumber(h, o + 337, 8, 'devminor') : 0;
    let xattrs: Array<[string, Buffer]> = NO_XATTRS;
    let sparse = false;
    let realSize = size;
    this.segments = undefined;
    this.realSize = 0;
    if (pax) {
      if (pax.path !== undefined) name = pax.path;
      if (pax.linkpath !== undefined) linkname = pax.linkpath;
      if (pax.size !== undefined) size = pax.size;
      if (pax.uid !== undefined) uid = pax.uid;
      if (pax.gid !== undefined) gid = pax.gid;
      if (pax.mtime) [mtime, mtimeNsec] = pax.mtime;
      xattrs = pax.xattrs;
      realSize = size;
      if (pax.sparseMajor !== undefined || pax.sparseMap !== undefined || pax.sparseRealSize !== undefined) {
        if (type !== 'file') throw corrupt(`sparse ${type ?? 'unknown'} entry`);
        sparse = true;
        if (pax.sparseName !== undefined) name = pax.sparseName;
        if (pax.sparseRealSize === undefined) throw corrupt('sparse file without its real size');
        realSize = pax.sparseRealSize;
        this.realSize = realSize;
        if (pax.sparseMajor === '1' && pax.sparseMinor === '0') {
          this.mapText = '';
        } else if (pax.sparseMap !== undefined && pax.sparseMajor !== '1') {
          this.setSegments(pax.sparseMap, size, realSize);
        } else {
          throw new BerthError('UNSUPPORTED', `layer entry "${name}": unsupported sparse format ${pax.sparseMajor ?? '?'}.${pax.sparseMinor ?? '?'}`);
        }
      }
    }
    this.entries++;
    const entry: TarEntry = { name, type, mode, uid, gid, mtime, mtimeNsec, size, realSize, sparse, linkname, devmajor, devminor, xattrs };
    this.sink.entry(entry); // validates (throws) before any byte of the entry is used
    this.isFile = type === 'file' || type === 'contiguous-file';
    this.remain = size;
    this.pad = (512 - (size % 512)) % 512;
    this.logical = 0;
    if (sparse && this.segments === undefined) {
      this.state = 'sparsemap';
      if (size === 0) throw corrupt('sparse file without a map');
    } else {
      this.state = 'data';
      if (size === 0) this.finishData();
    }
    return o + 512;
  }

  /** An extended header's data, b[start, end). */
  private onMeta(b: Buffer, start: number, end: number): void {
    if (this.metaKind === 'x') {
      const p = parsePax(b, start, end);
      // several local PAX headers in a row: merge, later records win
      this.pax = this.pax ? { ...this.pax, ...p, xattrs: [...this.pax.xattrs, ...p.xattrs] } : p;
    } else if (this.metaKind === 'L') {
      this.longName = cstr(b, start, end - start);
    } else if (this.metaKind === 'K') {
      this.longLink = cstr(b, start, end - start);
    } // 'g': ignored
    this.state = this.pad > 0 ? 'pad' : 'header';
  }

  private setSegments(map: number[], stored: number, realSize: number): void {
    if (map.length % 2 !== 0) throw corrupt('odd sparse map');
    let end = 0;
    let sum = 0;
    for (let i = 0; i < map.length; i += 2) {
      const o = map[i] as number;
      const l = map[i + 1] as number;
      if (o < end || o + l > realSize) throw corrupt('sparse map out of order or beyond the file');
      end = o + l;
      sum += l;
    }
    if (sum !== stored) throw corrupt('sparse map does not match the stored size');
    this.segments = map;
    this.segIdx = 0;
    this.segLeft = 0;
  }

  private onMapBytes(part: Buffer): void {
    this.mapText += part.toString('latin1');
    if (this.mapText.length > MAX_META) throw new BerthError('HOSTILE_LAYER', 'hostile layer: sparse map too large');
    // the map is whole 512-byte blocks: decimal count, then offset/size pairs, one per line
    if (this.mapText.length % 512 !== 0) return;
    const lines = this.mapText.split('\n');
    const count = lines[0] === undefined || lines.length < 2 ? -1 : decimal(lines[0], 'sparse map count');
    if (count < 0 || lines.length < 2 * count + 2) {
      if (this.remain === 0) throw corrupt('truncated sparse map');
      return;
    }
    const map = lines.slice(1, 1 + 2 * count).map((x) => decimal(x, 'sparse map'));
    this.setSegments(map, this.remain, this.realSize);
    this.mapText = '';
    this.state = 'data';
    if (this.remain === 0) this.finishData();
  }

  private onData(part: Buffer): void {
    if (this.segments === undefined) {
      this.sink.data(part);
      this.logical += part.length;
      return;
    }
    let p = 0;
    while (p < part.length) {
      if (this.segLeft <= 0) this.nextSegment();
      const take = Math.min(this.segLeft, part.length - p);
      this.sink.data(part.subarray(p, p + take));
      p += take;
      this.segLeft -= take;
      this.logical += take;
    }
  }

  /** Emits the hole before the next non-empty segment. */
  private nextSegment(): void {
    const segs = this.segments as number[];
    while (this.segIdx < segs.length) {
      const o = segs[this.segIdx] as number;
      const l = segs[this.segIdx + 1] as number;
      this.segIdx += 2;
      if (o > this.logical) this.sink.hole(o - this.logical);
      this.logical = o;
      if (l > 0) {
        this.segLeft = l;
        return;
      }
    }
    throw corrupt('sparse data beyond its map');
  }

  private finishData(): void {
    if (this.segments !== undefined && this.logical < this.realSize) this.sink.hole(this.realSize - this.logical);
    this.segments = undefined;
    this.sink.end();
    this.state = this.pad > 0 ? 'pad' : 'header';
  }
}
