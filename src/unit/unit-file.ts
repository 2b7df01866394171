/**
 * @module unit/unit-file
 * A systemd INI model (unit files, drop-ins, `.nspawn` files) that round-trips: comments,
 * blank lines, key order, repeated keys, empty "reset" assignments and line continuations
 * survive `serializeUnit(parseUnit(text))` byte for byte. Entries keep their original text
 * until they are changed, so a hand-edited file stays recognisable after berth touches it.
 *
 * Parsing follows systemd.syntax(7) as implemented by systemd 252's conf-parser:
 * - lines starting with `#` or `;` (after leading whitespace) are comments;
 * - a line ending in an odd number of backslashes continues on the next line, the backslash
 *   becomes a space, and comment lines inside a continuation are skipped;
 * - whitespace around `=` and at both ends of the value is dropped;
 * - a section may appear several times; its entries are read as one list.
 * Values are stored unescaped only at this level (no unquoting): quoting belongs to each
 * setting's own parser (see unit/quote).
 */
import { BerthError } from '../base/errors.ts';

export type UnitLine =
  | { kind: 'blank' | 'comment'; raw: string }
  | { kind: 'entry'; key: string; value: string; raw?: string };

export interface UnitSection {
  name: string;
  /** Original header line (kept for round trips); regenerated when absent. */
  header?: string;
  lines: UnitLine[];
}

export interface ParseOptions {
  /** File path, used in error messages. */
  path?: string;
}

const SECTION_RE = /^\[([^\[\]]+)\]$/;

export class UnitFile {
  path?: string;
  /** Comments and blank lines before the first section. */
  preamble: UnitLine[] = [];
  sections: UnitSection[] = [];

  constructor(path?: string) {
    if (path !== undefined) this.path = path;
  }

  /** Section names in order of first appearance. */
  sectionNames(): string[] {
    return [...new Set(this.sections.map((s) => s.name))];
  }

  hasSection(section: string): boolean {
    return this.sections.some((s) => s.name === section);
  }

  /** All assignments of key in section, in file order, including empty ("reset") ones. */
  getRaw(section: string, key: string): string[] {
    const out: string[] = [];
    for (const s of this.sections) {
      if (s.name !== section) continue;
      for (const l of s.lines) if (l.kind === 'entry' && l.key === key) out.push(l.value);
    }
    return out;
  }

  /** Single-valued read: the last assignment wins (systemd semantics). */
  get(section: string, key: string): string | undefined {
    const all = this.getRaw(section, key);
    return all[all.length - 1];
  }

  /** List read: the values after the last empty assignment (which resets the list). */
  getAll(section: string, key: string): string[] {
    const all = this.getRaw(section, key);
    const reset = all.lastIndexOf('');
    return all.slice(reset + 1);
  }

  /** Keys present in section, in order of first appearance. */
  keys(section: string): string[] {
    const out = new Set<string>();
    for (const s of this.sections) {
      if (s.name !== section) continue;
      for (const l of s.lines) if (l.kind === 'entry') out.add(l.key);
    }
    return [...out];
  }

  /**
   * Sets a single-valued key: the last assignment is updated in place, earlier ones are
   * removed; a missing key is appended to the section (created when needed).
   */
  set(section: string, key: string, value: string): this {
    checkEntry(key, value);
    const hits = this.entries(section, key);
    const last = hits.pop();
    for (const h of hits) h.sec.lines.splice(h.sec.lines.indexOf(h.line), 1);
    if (last) {
      const i = last.sec.lines.indexOf(last.line);
      last.sec.lines[i] = { kind: 'entry', key, value };
      return this;
    }
    return this.add(section, key, value);
  }

  /** Appends an assignment after the last entry of the (last) section with this name. */
  add(section: string, key: string, value: string): this {
    checkEntry(key, value);
    const sec = this.section(section);
    let at = sec.lines.length;
    while (at > 0 && sec.lines[at - 1]?.kind === 'blank') at--;
    sec.lines.splice(at, 0, { kind: 'entry', key, value });
    return this;
  }

  /** Removes every assignment of key in section; returns how many were removed. */
  remove(section: string, key: string): number {
    const hits = this.entries(section, key);
    for (const h of hits) h.sec.lines.splice(h.sec.lines.indexOf(h.line), 1);
    return hits.length;
  }

  /** Returns the last section with this name, appending an empty one when absent. */
  section(name: string): UnitSection {
    checkSectionName(name);
    for (let i = this.sections.length - 1; i >= 0; i--) {
      const s = this.sections[i];
      if (s?.name === name) return s;
    }
    const s: UnitSection = { name, lines: [] };
    const prev = this.sections[this.sections.length - 1]?.lines ?? this.preamble;
    if (prev.length > 0 && prev[prev.length - 1]?.kind !== 'blank') prev.push({ kind: 'blank', raw: '' });
    this.sections.push(s);
    return s;
  }

  /** Adds a comment line (without the leading "# ") to a section or, without one, the preamble. */
  comment(text: string, section?: string): this {
    const lines = text.split('\n').map((t): UnitLine => ({ kind: 'comment', raw: t === '' ? '#' : `# ${t}` }));
    if (section === undefined) this.preamble.push(...lines);
    else this.section(section).lines.push(...lines);
    return this;
  }

  private entries(section: string, key: string): Array<{ sec: UnitSection; line: UnitLine }> {
    const out: Array<{ sec: UnitSection; line: UnitLine }> = [];
    for (const sec of this.sections) {
      if (sec.name !== section) continue;
      for (const line of sec.lines) if (line.kind === 'entry' && line.key === key) out.push({ sec, line });
    }
    return out;
  }
}

/**
 * Last line of defence against injection: a value written by berth must stay one logical
 * line. Quoting is the caller's job (unit/quote); this refuses what would break the file.
 */
function checkEntry(key: string, value: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(key)) {
    throw new BerthError('INVALID_ARGUMENT', `invalid unit file key "${key}"`);
  }
  if (/[\n\r\0]/.test(value)) {
    throw new BerthError('INVALID_ARGUMENT', `${key}=: value contains a line break or NUL`);
  }
  if (continues(value)) {
    throw new BerthError('INVALID_ARGUMENT', `${key}=: value ends in a backslash, which would continue the line`);
  }
}

function checkSectionName(name: string): void {
  if (name === '' || /[\[\]\n\r\0]/.test(name)) {
    throw new BerthError('INVALID_ARGUMENT', `invalid unit file section name "${name}"`);
  }
}

/** True when a line ends in an odd number of backslashes, i.e. continues on the next line. */
function continues(line: string): boolean {
  let n = 0;
  for (let i = line.length - 1; i >= 0 && line[i] === '\\'; i--) n++;
  return n % 2 === 1;
}

const isComment = (t: string): boolean => t.startsWith('#') || t.startsWith(';');

export function parseUnit(text: string, opts: ParseOptions = {}): UnitFile {
  const where = opts.path ?? '<unit>';
  const u = new UnitFile(opts.path);
  if (text.includes('\0')) throw new BerthError('INVALID_ARGUMENT', `${where}: contains a NUL byte`);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  let current: UnitSection | undefined;
  const push = (l: UnitLine): void => {
    (current ? current.lines : u.preamble).push(l);
  };
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i] ?? '';
    const t = first.trim();
    if (t === '') { push({ kind: 'blank', raw: first }); continue; }
    if (isComment(t)) { push({ kind: 'comment', raw: first }); continue; }
    const rawLines = [first];
    let logical = t;
    if (continues(logical)) {
      logical = `${logical.slice(0, -1)} `;
      while (i + 1 < lines.length) {
        i++;
        const next = lines[i] ?? '';
        rawLines.push(next);
        const nt = next.trim();
        if (isComment(nt)) continue;
        if (!continues(nt)) { logical += nt; break; }
        logical += `${nt.slice(0, -1)} `;
      }
    }
    logical = logical.trim();
    const raw = rawLines.join('\n');
    const m = SECTION_RE.exec(logical);
    if (m && rawLines.length === 1) {
      current = { name: m[1] ?? '', header: first, lines: [] };
      u.sections.push(current);
      continue;
    }
    const eq = logical.indexOf('=');
    if (eq <= 0) throw new BerthError('INVALID_ARGUMENT', `${where}:${i + 1}: expected KEY=VALUE, got "${logical}"`);
    if (!current) throw new BerthError('INVALID_ARGUMENT', `${where}:${i + 1}: assignment outside of a section`);
    push({ kind: 'entry', key: logical.slice(0, eq).trim(), value: logical.slice(eq + 1).trim(), raw });
  }
  return u;
}

export function serializeUnit(u: UnitFile): string {
  const out: string[] = [];
  const emit = (l: UnitLine): void => {
    if (l.kind !== 'entry') out.push(l.raw);
    else out.push(l.raw ?? `${l.key}=${l.value}`);
  };
  u.preamble.forEach(emit);
  for (const s of u.sections) {
    out.push(s.header ?? `[${s.name}]`);
    s.lines.forEach(emit);
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
