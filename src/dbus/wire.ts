/**
 * @module dbus/wire
 * The D-Bus wire format (little-endian, as every bus on Linux/x86 and arm speaks it),
 * pure: signatures parsed into type trees, values marshalled into a body and read back
 * with every bound checked. Only what berth needs is written (all basic types, arrays,
 * structs, dict entries, variants); unix fds are not negotiated.
 *
 * JS values: y n q i u h d → number, x t → bigint, b → boolean, s o g → string,
 * a → array, a{KV} → Map, (…) → array, v → { sig, value } when writing and the bare
 * value when reading (readers of property maps want the value, not its type).
 *
 * Hostile input: a reply is read against the limits of the specification (arrays ≤ 64 MiB,
 * nesting ≤ 64, strings valid UTF-8 with their NUL, booleans 0/1); anything else is a
 * WireError and never an out-of-range read.
 */
import { isAscii } from 'node:buffer';

export type TypeNode =
  | { kind: 'basic'; code: string }
  | { kind: 'array'; elem: TypeNode }
  | { kind: 'struct'; fields: TypeNode[] }
  | { kind: 'dict'; key: TypeNode; value: TypeNode }
  | { kind: 'variant' };

export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

const BASIC = 'ybnqiuxtdsoghv';
const MAX_ARRAY = 64 * 1024 * 1024;
const MAX_DEPTH = 64;

/** Parses a signature into one node per complete type. */
export function parseSignature(sig: string): TypeNode[] {
  if (sig.length > 255) throw new WireError(`signature longer than 255: ${sig.slice(0, 40)}…`);
  let i = 0;
  const one = (depth: number): TypeNode => {
    if (depth > MAX_DEPTH) throw new WireError(`signature nested too deep: ${sig}`);
    const c = sig[i++];
    if (c === undefined) throw new WireError(`truncated signature: ${sig}`);
    if (c === 'a') {
      if (sig[i] === '{') {
        i++;
        const key = one(depth + 1);
        if (key.kind !== 'basic' || key.code === 'v') throw new WireError(`dict key must be a basic type: ${sig}`);
        const value = one(depth + 1);
        if (sig[i++] !== '}') throw new WireError(`unterminated dict entry: ${sig}`);
        return { kind: 'dict', key, value };
      }
      return { kind: 'array', elem: one(depth + 1) };
    }
    if (c === '(') {
      const fields: TypeNode[] = [];
      while (sig[i] !== ')') {
        if (i >= sig.length) throw new WireError(`unterminated struct: ${sig}`);
        fields.push(one(depth + 1));
      }
      i++;
      if (fields.length === 0) throw new WireError(`empty struct: ${sig}`);
      return { kind: 'struct', fields };
    }
    if (c === 'v') return { kind: 'variant' };
    if (BASIC.includes(c)) return { kind: 'basic', code: c };
    throw new WireError(`unknown type code ${JSON.stringify(c)} in signature ${JSON.stringify(sig)}`);
  };
  const out: TypeNode[] = [];
  while (i < sig.length) out.push(one(0));
  return out;
}

function alignOf(t: TypeNode): number {
  switch (t.kind) {
    case 'array':
      return 4;
    case 'struct':
    case 'dict':
      return 8;
    case 'variant':
      return 1;
    case 'basic':
      return basicAlign(t.code);
  }
}

const BASIC_ALIGN: Record<string, number> = { y: 1, g: 1, n: 2, q: 2, b: 4, i: 4, u: 4, h: 4, s: 4, o: 4, x: 8, t: 8, d: 8 };

function basicAlign(code: string): number {
  return BASIC_ALIGN[code] ?? 1;
}

export function signatureOf(t: TypeNode): string {
  switch (t.kind) {
    case 'basic':
      return t.code;
    case 'variant':
      return 'v';
    case 'array':
      return `a${signatureOf(t.elem)}`;
    case 'dict':
      return `a{${signatureOf(t.key)}${signatureOf(t.value)}}`;
    case 'struct':
      return `(${t.fields.map(signatureOf).join('')})`;
  }
}

/** A variant to write: its signature and value. */
export interface Variant {
  sig: string;
  value: unknown;
}

/** Appends values to a growing buffer; offsets are relative to the start (8-aligned). */
export class Writer {
  private buf = Buffer.alloc(256);
  length = 0;

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const b = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(b, 0, 0, this.length);
    this.buf = b;
  }

  align(n: number): void {
    const pad = (n - (this.length % n)) % n;
    this.ensure(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  write(t: TypeNode, v: unknown): void {
    switch (t.kind) {
      case 'basic':
        return this.basic(t.code, v);
      case 'variant': {
        const vv = v as Variant;
        if (!vv || typeof vv.sig !== 'string') throw new WireError('variant value must be { sig, value }');
        const types = parseSignature(vv.sig);
        if (types.length !== 1) throw new WireError(`variant signature must be one complete type: ${vv.sig}`);
        this.basic('g', vv.sig);
        return this.write(types[0] as TypeNode, vv.value);
      }
      case 'array': {
        const items = v as unknown[];
        if (!Array.isArray(items)) throw new WireError(`expected an array for a${signatureOf(t.elem)}`);
        this.arrayOf(alignOf(t.elem), () => {
          for (const x of items) this.write(t.elem, x);
        });
        return;
      }
      case 'dict': {
        const entries = v instanceof Map ? [...v.entries()] : Object.entries(v as Record<string, unknown>);
        this.arrayOf(8, () => {
          for (const [k, x] of entries) {
            this.align(8);
            this.write(t.key, k);
            this.write(t.value, x);
          }
        });
        return;
      }
      case 'struct': {
        const fields = v as unknown[];
        if (!Array.isArray(fields) || fields.length !== t.fields.length) throw new WireError(`expected ${t.fields.length} struct fields`);
        this.align(8);
        t.fields.forEach((f, i) => this.write(f, fields[i]));
      }
    }
  }

  private arrayOf(elemAlign: number, body: () => void): void {
    this.align(4);
    const at = this.length;
    this.ensure(4);
    this.length += 4;
    this.align(elemAlign);
    const start = this.length;
    body();
    const n = this.length - start;
    if (n > MAX_ARRAY) throw new WireError('array longer than 64 MiB');
    this.buf.writeUInt32LE(n, at);
  }

  private basic(code: string, v: unknown): void {
    const num = (): number => {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new WireError(`expected a number for ${code}, got ${typeof v}`);
      return v;
    };
    this.align(basicAlign(code));
    switch (code) {
      case 'y':
        this.ensure(1);
        this.buf.writeUInt8(num(), this.length);
        this.length += 1;
        return;
      case 'b':
        this.ensure(4);
        this.buf.writeUInt32LE(v ? 1 : 0, this.length);
        this.length += 4;
        return;
      case 'n':
        this.ensure(2);
        this.buf.writeInt16LE(num(), this.length);
        this.length += 2;
        return;
      case 'q':
        this.ensure(2);
        this.buf.writeUInt16LE(num(), this.length);
        this.length += 2;
        return;
      case 'i':
        this.ensure(4);
        this.buf.writeInt32LE(num(), this.length);
        this.length += 4;
        return;
      case 'u':
      case 'h':
        this.ensure(4);
        this.buf.writeUInt32LE(num(), this.length);
        this.length += 4;
        return;
      case 'x':
        this.ensure(8);
        this.buf.writeBigInt64LE(BigInt(v as bigint | number), this.length);
        this.length += 8;
        return;
      case 't':
        this.ensure(8);
        this.buf.writeBigUInt64LE(BigInt(v as bigint | number), this.length);
        this.length += 8;
        return;
      case 'd':
        this.ensure(8);
        this.buf.writeDoubleLE(num(), this.length);
        this.length += 8;
        return;
      case 's':
      case 'o':
      case 'g': {
        if (typeof v !== 'string') throw new WireError(`expected a string for ${code}`);
        if (v.includes('\0')) throw new WireError('strings cannot contain NUL');
        if (code === 'o' && !isObjectPath(v)) throw new WireError(`not an object path: ${JSON.stringify(v)}`);
        const b = Buffer.from(v, 'utf8');
        if (code === 'g') {
          if (b.length > 255) throw new WireError('signature longer than 255');
          this.ensure(1 + b.length + 1);
          this.buf.writeUInt8(b.length, this.length);
          this.length += 1;
        } else {
          this.ensure(4 + b.length + 1);
          this.buf.writeUInt32LE(b.length, this.length);
          this.length += 4;
        }
        b.copy(this.buf, this.length);
        this.length += b.length;
        this.buf[this.length++] = 0;
        return;
      }
      default:
        throw new WireError(`cannot write type ${code}`);
    }
  }
}

export function isObjectPath(p: string): boolean {
  return p === '/' || /^(\/[A-Za-z0-9_]+)+$/.test(p);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads values from buf; `base` is the offset of buf[0] in the message (for alignment). */
export class Reader {
  pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly base = 0,
  ) {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new WireError(`message truncated: need ${n} bytes at ${this.pos}, have ${this.buf.length - this.pos}`);
  }

  align(n: number): void {
    const pad = (n - ((this.base + this.pos) % n)) % n;
    this.need(pad);
    for (let i = 0; i < pad; i++) if (this.buf[this.pos + i] !== 0) throw new WireError('non-zero padding');
    this.pos += pad;
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  read(t: TypeNode, depth = 0): unknown {
    if (depth > MAX_DEPTH) throw new WireError('value nested too deep');
    switch (t.kind) {
      case 'basic':
        return this.basic(t.code);
      case 'variant': {
        const sig = this.basic('g') as string;
        const types = parseSignature(sig);
        if (types.length !== 1) throw new WireError(`variant signature is not one complete type: ${sig}`);
        return this.read(types[0] as TypeNode, depth + 1);
      }
      case 'array':
      case 'dict': {
        this.align(4);
        this.need(4);
        const n = this.buf.readUInt32LE(this.pos);
        this.pos += 4;
        if (n > MAX_ARRAY) throw new WireError(`array length ${n} above 64 MiB`);
        this.align(t.kind === 'dict' ? 8 : alignOf(t.elem));
        const end = this.pos + n;
        if (end > this.buf.length) throw new WireError('array runs past the end of the message');
        if (t.kind === 'dict') {
          const m = new Map<unknown, unknown>();
          while (this.pos < end) {
            this.align(8);
            const k = this.read(t.key, depth + 1);
            m.set(k, this.read(t.value, depth + 1));
          }
          if (this.pos !== end) throw new WireError('dict entry runs past its array');
          return m;
        }
        const out: unknown[] = [];
        while (this.pos < end) out.push(this.read(t.elem, depth + 1));
        if (this.pos !== end) throw new WireError('array element runs past its array');
        return out;
      }
      case 'struct':
        this.align(8);
        return t.fields.map((f) => this.read(f, depth + 1));
    }
  }

  private basic(code: string): unknown {
    this.align(basicAlign(code));
    const b = this.buf;
    const at = this.pos;
    switch (code) {
      case 'y':
        this.need(1);
        this.pos += 1;
        return b.readUInt8(at);
      case 'b': {
        this.need(4);
        this.pos += 4;
        const v = b.readUInt32LE(at);
        if (v > 1) throw new WireError(`boolean with value ${v}`);
        return v === 1;
      }
      case 'n':
        this.need(2);
        this.pos += 2;
        return b.readInt16LE(at);
      case 'q':
        this.need(2);
        this.pos += 2;
        return b.readUInt16LE(at);
      case 'i':
        this.need(4);
        this.pos += 4;
        return b.readInt32LE(at);
      case 'u':
      case 'h':
        this.need(4);
        this.pos += 4;
        return b.readUInt32LE(at);
      case 'x':
        this.need(8);
        this.pos += 8;
        return b.readBigInt64LE(at);
      case 't':
        this.need(8);
        this.pos += 8;
        return b.readBigUInt64LE(at);
      case 'd':
        this.need(8);
        this.pos += 8;
        return b.readDoubleLE(at);
      case 's':
      case 'o':
      case 'g': {
        let n: number;
        if (code === 'g') {
          this.need(1);
          n = b.readUInt8(at);
          this.pos += 1;
        } else {
          this.need(4);
          n = b.readUInt32LE(at);
          this.pos += 4;
        }
        this.need(n + 1);
        if (b[this.pos + n] !== 0) throw new WireError('string without its NUL terminator');
        // Unit names, states and paths are ASCII: checked natively (isAscii, then no NUL
        // before the terminator) and sliced as latin1, several times cheaper than a fatal
        // TextDecoder call per string, and than a byte loop in a process too short-lived
        // for V8 to optimise it (ps of 200 machines decodes ~2,000 strings once).
        const body = b.subarray(this.pos, this.pos + n);
        let s: string;
        if (isAscii(body)) {
          if (body.indexOf(0) !== -1) throw new WireError('string contains NUL');
          s = body.toString('latin1');
        } else {
          try {
            s = utf8.decode(body);
          } catch {
            throw new WireError('string is not valid UTF-8');
          }
          if (s.includes('\0')) throw new WireError('string contains NUL');
        }
        this.pos += n + 1;
        if (code === 'o' && !isObjectPath(s)) throw new WireError(`not an object path: ${JSON.stringify(s)}`);
        return s;
      }
      default:
        throw new WireError(`cannot read type ${code}`);
    }
  }
}

/** Marshals values by signature into a body (offset 0 is 8-aligned in the message). */
export function marshal(sig: string, values: readonly unknown[]): Buffer {
  const types = parseSignature(sig);
  if (types.length !== values.length) throw new WireError(`signature ${sig} wants ${types.length} values, got ${values.length}`);
  const w = new Writer();
  types.forEach((t, i) => w.write(t, values[i]));
  return Buffer.from(w.bytes());
}

/** Reads a whole body by signature; trailing bytes are an error. */
export function unmarshal(sig: string, body: Buffer): unknown[] {
  const r = new Reader(body);
  const out = parseSignature(sig).map((t) => r.read(t));
  if (!r.done) throw new WireError(`${body.length - r.pos} bytes left after the body of signature ${sig}`);
  return out;
}
