/**
 * @module unit/quote
 * Quoting for values berth writes into systemd files. Each destination parses differently,
 * so each has its own function; none of them is a general "escape".
 *
 * Unit files (systemd proper, systemd.syntax(7), systemd.exec(5)):
 * - ExecStart= words: `extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)`, then `$VAR`
 *   expansion and `%` specifiers → double-quoted C escapes, `$` → `$$`, `%` → `%%`.
 * - Environment=: same word parser and specifiers, but no `$` expansion → `$` stays.
 * - Description= and other printf strings: specifiers only → `%` → `%%`.
 *
 * `.nspawn` files (systemd-nspawn 252, verified empirically, see runtime/nspawn/translate):
 * - Parameters= and Environment= use `config_parse_strv`, i.e. extract_first_word with
 *   EXTRACT_UNQUOTE|EXTRACT_RETAIN_ESCAPE: quotes group, a backslash is an ordinary
 *   character, there are NO escapes, no specifiers and no `$` expansion. Adjacent quoted
 *   parts concatenate (`'a'"'"'b'` is `a'b`). A newline cannot be represented at all.
 * - Bind=, BindReadOnly=, TemporaryFileSystem= split on `:` with backslash escapes and no
 *   quoting → `\` → `\\`, `:` → `\:`.
 *
 * What cannot be represented is refused with INVALID_ARGUMENT naming the field, never
 * silently altered.
 */
import { BerthError } from '../base/errors.ts';

export interface SafeValueOptions {
  /** Allow "\n" (representable as `\n` in unit files; never in .nspawn files). */
  allowNewline?: boolean;
  /** Allow "\t" (default true). */
  allowTab?: boolean;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** systemd reads lines up to 1 MiB (LONG_LINE_MAX); keep well below. */
export const MAX_VALUE_LENGTH = 512 * 1024;

function describe(c: string): string {
  if (c === '\0') return 'a NUL byte';
  if (c === '\n') return 'a newline';
  if (c === '\r') return 'a carriage return';
  return `control character U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Refuses values that cannot be written safely: NUL, control characters other than tab
 * (and newline when allowed), DEL, text that is not valid Unicode, absurd lengths.
 * `field` names the user-facing thing ("env FOO", "argument 2", "--hostname").
 */
export function assertSafeValue(field: string, value: string, opts: SafeValueOptions = {}): void {
  const allowTab = opts.allowTab ?? true;
  for (const c of value) {
    const n = c.charCodeAt(0);
    if (n >= 0x20 && n !== 0x7f) continue;
    if (c === '\t' && allowTab) continue;
    if (c === '\n' && opts.allowNewline) continue;
    throw new BerthError('INVALID_ARGUMENT', `${field}: contains ${describe(c)}, which cannot be written safely into a systemd file`, {
      details: { field },
    });
  }
  if (LONE_SURROGATE.test(value)) {
    throw new BerthError('INVALID_ARGUMENT', `${field}: is not valid Unicode (lone surrogate)`, { details: { field } });
  }
  if (value.length > MAX_VALUE_LENGTH) {
    throw new BerthError('INVALID_ARGUMENT', `${field}: longer than ${MAX_VALUE_LENGTH} characters`, { details: { field } });
  }
}

function cEscape(s: string, dollar: boolean): string {
  let out = '';
  for (const c of s) {
    switch (c) {
      case '\\': out += '\\\\'; break;
      case '"': out += '\\"'; break;
      case '\n': out += '\\n'; break;
      case '\t': out += '\\t'; break;
      case '%': out += '%%'; break;
      case '$': out += dollar ? '$$' : '$'; break;
      default: out += c;
    }
  }
  return out;
}

/** One ExecStart=-style word for a unit file: `"…"` with C escapes, `$$` and `%%`. */
export function quoteExecArg(s: string, field = 'argument'): string {
  assertSafeValue(field, s, { allowNewline: true });
  return `"${cEscape(s, true)}"`;
}

/** Shell-free, unit-file-safe command line: each word quoted with quoteExecArg. */
export function quoteExecLine(argv: readonly string[], field = 'command'): string {
  return argv.map((a, i) => quoteExecArg(a, `${field} word ${i}`)).join(' ');
}

/** Environment variable names systemd accepts in unit files (VALID_BASH_ENV_NAME_CHARS). */
export function isUnitEnvName(k: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(k);
}

/** The value of a unit file `Environment=` line: `"K=V"` with C escapes and `%%`. */
export function quoteEnvironment(k: string, v: string): string {
  if (!isUnitEnvName(k)) {
    throw new BerthError('INVALID_ARGUMENT', `environment variable name "${k}" is not valid in a unit file (want [A-Za-z_][A-Za-z0-9_]*)`);
  }
  assertSafeValue(`env ${k}`, v, { allowNewline: true });
  return `"${cEscape(`${k}=${v}`, false)}"`;
}

/** A value for printf-style unit settings (Description=, …): only `%` is special. */
export function escapeSpecifiers(s: string, field = 'value'): string {
  assertSafeValue(field, s, { allowTab: false });
  if (s.trim() !== s) throw new BerthError('INVALID_ARGUMENT', `${field}: leading or trailing whitespace would be lost`);
  if (s.endsWith('\\')) throw new BerthError('INVALID_ARGUMENT', `${field}: must not end in a backslash`);
  return s.replace(/%/g, '%%');
}

/**
 * One word for `.nspawn` Parameters= / Environment=. There are no escapes there, only
 * quotes, so: single quotes around everything, and each `'` written as `"'"` between two
 * single-quoted parts. Newlines are refused (unrepresentable).
 */
export function quoteNspawnWord(s: string, field = 'argument'): string {
  assertSafeValue(field, s);
  if (!s.includes("'")) return `'${s}'`;
  if (!s.includes('"')) return `"${s}"`;
  return s
    .split("'")
    .map((part) => (part === '' ? '' : `'${part}'`))
    .join(`"'"`);
}

/**
 * Splits a `.nspawn` Parameters=/Environment= value the way systemd-nspawn 252 does
 * (EXTRACT_UNQUOTE|EXTRACT_RETAIN_ESCAPE). Used to read hand-edited files back.
 * Throws INVALID_ARGUMENT on an unterminated quote (nspawn ignores such a line).
 */
export function parseNspawnWords(value: string): string[] {
  // One native regex step per quoted part, unquoted run or gap (not a JavaScript step per
  // character): `ps` reads 200 of these in a process too short for V8 to optimise a loop.
  const words: string[] = [];
  let cur: string | undefined;
  NSPAWN_PART.lastIndex = 0;
  for (let m = NSPAWN_PART.exec(value); m !== null; m = NSPAWN_PART.exec(value)) {
    if (m[4] !== undefined) {
      if (cur !== undefined) words.push(cur);
      cur = undefined;
    } else if (m[5] !== undefined) {
      throw new BerthError('INVALID_ARGUMENT', `unterminated ${m[5]} quote in "${value}"`);
    } else {
      cur = (cur ?? '') + (m[1] ?? m[2] ?? m[3]);
    }
  }
  if (cur !== undefined) words.push(cur);
  return words;
}

/** A single-quoted part, a double-quoted part, an unquoted run, a gap, or a lone quote. */
const NSPAWN_PART = /'([^']*)'|"([^"]*)"|([^ \t\n\r'"]+)|([ \t\n\r]+)|(['"])/gy;

/**
 * A path inside a `.nspawn` Bind=/BindReadOnly=/TemporaryFileSystem= value: backslash and
 * colon escaped; whitespace escaped too so the line's edges cannot eat it.
 */
export function escapeNspawnPath(p: string, field = 'path'): string {
  assertSafeValue(field, p, { allowTab: false });
  return p.replace(/[\\: ]/g, (c) => `\\${c}`);
}
