/**
 * @module registry/toml
 * The subset of TOML that containers-registries.conf(5) files use, parsed without a
 * dependency: comments, `key = value` with bare or quoted keys, basic and literal strings,
 * booleans, integers, arrays (of strings, possibly over several lines), `[table]`,
 * `[a.b]` and arrays of tables `[[a]]` / `[[a.b]]` (the latter nests in the last `a`).
 * Anything else (inline tables, dotted keys, dates, floats, multi-line strings) is
 * rejected with file:line, so a config berth cannot read is an error, not a silent ignore.
 */
import { BerthError } from '../base/errors.ts';

export type TomlValue = string | boolean | number | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

class Cursor {
  pos = 0;
  line = 1;
  constructor(readonly src: string, readonly file: string) {}
  peek(): string | undefined {
    return this.src[this.pos];
  }
  next(): string | undefined {
    const c = this.src[this.pos++];
    if (c === '\n') this.line++;
    return c;
  }
  fail(why: string): never {
    throw new BerthError('INVALID_ARGUMENT', `${this.file}:${this.line}: ${why}`, { details: { file: this.file, line: this.line } });
  }
  /** Skips spaces/tabs, and with newlines=true also newlines and comments. */
  skip(newlines: boolean): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\r') this.pos++;
      else if (newlines && c === '\n') this.next();
      else if (c === '#') {
        // a comment runs to the end of the line (found at once: most of registries.conf is comments)
        const nl = this.src.indexOf('\n', this.pos);
        this.pos = nl < 0 ? this.src.length : nl;
      }
      else return;
    }
  }
  endOfLine(): void {
    this.skip(false);
    const c = this.peek();
    if (c !== undefined && c !== '\n') this.fail(`unexpected "${c}" after value`);
  }
}

/** A-Z a-z 0-9 _ - (TOML's bare key characters). */
function isBareKeyChar(ch: number): boolean {
  return (ch >= 0x41 && ch <= 0x5a) || (ch >= 0x61 && ch <= 0x7a) || (ch >= 0x30 && ch <= 0x39) || ch === 0x5f || ch === 0x2d;
}
const ESCAPES: Record<string, string> = { b: '\b', t: '\t', n: '\n', f: '\f', r: '\r', '"': '"', '\\': '\\' };

function parseString(c: Cursor): string {
  const quote = c.next() as string;
  // The common case at once: the closing quote on this line, no escape before it.
  const close = c.src.indexOf(quote, c.pos);
  if (close >= 0) {
    const nl = c.src.indexOf('\n', c.pos);
    const bs = quote === '"' ? c.src.indexOf('\\', c.pos) : -1;
    if ((nl < 0 || nl > close) && (bs < 0 || bs > close)) {
      const str = c.src.slice(c.pos, close);
      c.pos = close + 1;
      return str;
    }
  }
  let s = '';
  for (;;) {
    const ch = c.next();
    if (ch === undefined || ch === '\n') c.fail('unterminated string');
    if (ch === quote) return s;
    if (ch === '\\' && quote === '"') {
      const e = c.next() ?? '';
      if (e === 'u' || e === 'U') {
        const n = e === 'u' ? 4 : 8;
        const hex = c.src.slice(c.pos, c.pos + n);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) c.fail('bad unicode escape');
        c.pos += n;
        s += String.fromCodePoint(parseInt(hex, 16));
      } else if (ESCAPES[e] !== undefined) s += ESCAPES[e];
      else c.fail(`bad escape "\\${e}"`);
    } else s += ch;
  }
}

function parseKey(c: Cursor): string {
  const ch = c.peek();
  if (ch === '"' || ch === "'") return parseString(c);
  const start = c.pos;
  while (c.pos < c.src.length && isBareKeyChar(c.src.charCodeAt(c.pos))) c.pos++;
  const k = c.src.slice(start, c.pos);
  if (k === '') c.fail(`expected a key, found "${ch ?? 'end of file'}"`);
  return k;
}

function parseValue(c: Cursor): TomlValue {
  const ch = c.peek();
  if (ch === '"' || ch === "'") {
    if (c.src.startsWith(ch.repeat(3), c.pos)) c.fail('multi-line strings are not supported');
    return parseString(c);
  }
  if (ch === '[') {
    c.next();
    const arr: TomlValue[] = [];
    for (;;) {
      c.skip(true);
      if (c.peek() === ']') {
        c.next();
        return arr;
      }
      arr.push(parseValue(c));
      c.skip(true);
      const sep = c.next();
      if (sep === ']') return arr;
      if (sep !== ',') c.fail('expected "," or "]" in array');
    }
  }
  const m = /^(true|false|[+-]?\d[\d_]*)(?=[\s,\]#]|$)/.exec(c.src.slice(c.pos, c.pos + 64));
  if (!m) c.fail(`unsupported value starting with "${c.src.slice(c.pos, c.pos + 12).split('\n')[0]}"`);
  c.pos += m[0].length;
  if (m[1] === 'true') return true;
  if (m[1] === 'false') return false;
  return Number(m[1]!.replace(/_/g, ''));
}

function isTable(v: TomlValue | undefined): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Walks/creates the table at path; for arrays of tables, descends into the last element. */
function tableAt(c: Cursor, root: TomlTable, path: string[]): TomlTable {
  let t = root;
  for (const k of path) {
    let v = t[k];
    if (v === undefined) t[k] = v = {};
    if (Array.isArray(v)) v = v.at(-1);
    if (!isTable(v)) c.fail(`"${k}" is not a table`);
    t = v;
  }
  return t;
}

function parseHeaderPath(c: Cursor): string[] {
  const path: string[] = [];
  for (;;) {
    c.skip(false);
    path.push(parseKey(c));
    c.skip(false);
    if (c.peek() !== '.') return path;
    c.next();
  }
}

export function parseToml(src: string, file = '<toml>'): TomlTable {
  const c: Cursor = new Cursor(src, file);
  const root: TomlTable = {};
  let current = root;
  for (;;) {
    c.skip(true);
    if (c.peek() === undefined) return root;
    if (c.peek() === '[') {
      c.next();
      const arrayOfTables = c.peek() === '[';
      if (arrayOfTables) c.next();
      const path = parseHeaderPath(c);
      for (let i = arrayOfTables ? 2 : 1; i > 0; i--) {
        if (c.peek() !== ']') c.fail('malformed table header');
        c.next();
      }
      c.endOfLine();
      const parent = tableAt(c, root, path.slice(0, -1));
      const last = path.at(-1)!;
      if (arrayOfTables) {
        const existing = parent[last] ?? (parent[last] = []);
        if (!Array.isArray(existing)) c.fail(`"${path.join('.')}" is not an array of tables`);
        const t: TomlTable = {};
        existing.push(t);
        current = t;
      } else {
        current = tableAt(c, parent, [last]);
      }
      continue;
    }
    const key = parseKey(c);
    c.skip(false);
    if (c.peek() === '.') c.fail('dotted keys are not supported');
    if (c.next() !== '=') c.fail(`expected "=" after key "${key}"`);
    c.skip(false);
    if (Object.hasOwn(current, key)) c.fail(`duplicate key "${key}"`);
    current[key] = parseValue(c);
    c.endOfLine();
  }
}
