/**
 * @module registry/registries-conf
 * containers-registries.conf(5): which registries are insecure or blocked, and which
 * mirrors to try before the original, read from /etc/containers/registries.conf and then
 * /etc/containers/registries.conf.d/*.conf in lexical order, so berth honours the same
 * configuration as Podman on the same machine.
 *
 * Supported: v2 `[[registry]]` (prefix, location, insecure, blocked, mirror-by-digest-only,
 * `[[registry.mirror]]` location/insecure/pull-from-mirror), `unqualified-search-registries`
 * (parsed only), and the v1 `[registries.insecure|block|search] registries = [...]` lists.
 * A later file's `[[registry]]` with the same prefix replaces an earlier one, as in Podman.
 * Prefix matching is by path component (`example.com/foo` matches `example.com/foo/bar`,
 * not `example.com/foobar`), longest prefix wins, `*.example.com` matches subdomains.
 * Unknown keys are ignored (forward compatibility); malformed files fail with file:line.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../base/errors.ts';
import { isErrno } from '../base/fs.ts';
import { parseToml, type TomlTable, type TomlValue } from './toml.ts';

export const DEFAULT_REGISTRIES_CONF = '/etc/containers/registries.conf';
export const DEFAULT_REGISTRIES_CONF_DIR = '/etc/containers/registries.conf.d';

export type PullFromMirror = 'all' | 'digest-only' | 'tag-only';

export interface MirrorEntry {
  location: string;
  insecure: boolean;
  pullFromMirror: PullFromMirror;
}

export interface RegistryEntry {
  prefix: string;
  location: string;
  insecure: boolean;
  blocked: boolean;
  mirrorByDigestOnly: boolean;
  mirrors: MirrorEntry[];
}

/** One place to pull a repository from, in the order to try. */
export interface Endpoint {
  registry: string;
  repository: string;
  insecure: boolean;
  mirror: boolean;
}

export interface RegistriesConfig {
  readonly registries: readonly RegistryEntry[];
  readonly unqualifiedSearchRegistries: readonly string[];
  isInsecure(host: string): boolean;
  isBlocked(host: string): boolean;
  mirrorsFor(ref: RefLike): Array<{ host: string; insecure: boolean }>;
  /** Mirrors first (those applicable to a tag or digest pull), then the original location. */
  endpointsFor(ref: RefLike): Endpoint[];
}

export interface RefLike {
  registry: string;
  repository: string;
  digest?: string;
}

interface RawConfig {
  registries: Map<string, RegistryEntry>;
  search?: string[];
  v1Insecure: Set<string>;
  v1Blocked: Set<string>;
}

function str(v: TomlValue | undefined, what: string, file: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw bad(file, `${what} must be a string`);
  return v;
}
function bool(v: TomlValue | undefined, what: string, file: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw bad(file, `${what} must be true or false`);
  return v;
}
function strings(v: TomlValue | undefined, what: string, file: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad(file, `${what} must be an array of strings`);
  return v as string[];
}
function bad(file: string, why: string): BerthError {
  return new BerthError('INVALID_ARGUMENT', `${file}: ${why}`, { details: { file } });
}
function tables(v: TomlValue | undefined, what: string, file: string): TomlTable[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw bad(file, `${what} must be an array of tables ([[${what}]])`);
  return v as TomlTable[];
}

function mergeFile(raw: RawConfig, doc: TomlTable, file: string): void {
  const search = strings(doc['unqualified-search-registries'], 'unqualified-search-registries', file);
  if (search) raw.search = search;
  for (const t of tables(doc.registry, 'registry', file)) {
    const location = str(t.location, 'registry.location', file) ?? '';
    const prefix = str(t.prefix, 'registry.prefix', file) ?? location;
    if (prefix === '') throw bad(file, '[[registry]] needs a location or a prefix');
    if (prefix.startsWith('*.') && location !== '') throw bad(file, `wildcard prefix "${prefix}" cannot have a location`);
    const pfm = (m: TomlTable): PullFromMirror => {
      const v = str(m['pull-from-mirror'], 'registry.mirror.pull-from-mirror', file) ?? 'all';
      if (v !== 'all' && v !== 'digest-only' && v !== 'tag-only') throw bad(file, `pull-from-mirror must be all, digest-only or tag-only, not "${v}"`);
      return v;
    };
    raw.registries.set(prefix, {
      prefix,
      location: location || prefix,
      insecure: bool(t.insecure, 'registry.insecure', file),
      blocked: bool(t.blocked, 'registry.blocked', file),
      mirrorByDigestOnly: bool(t['mirror-by-digest-only'], 'registry.mirror-by-digest-only', file),
      mirrors: tables(t.mirror, 'registry.mirror', file).map((m) => ({
        location: str(m.location, 'registry.mirror.location', file) ?? '',
        insecure: bool(m.insecure, 'registry.mirror.insecure', file),
        pullFromMirror: pfm(m),
      })).filter((m) => m.location !== ''),
    });
  }
  const v1 = doc.registries;
  if (v1 !== undefined && typeof v1 === 'object' && !Array.isArray(v1)) {
    const list = (k: string): string[] => {
      const t = v1[k];
      return t && typeof t === 'object' && !Array.isArray(t) ? strings(t.registries, `registries.${k}.registries`, file) ?? [] : [];
    };
    list('insecure').forEach((h) => raw.v1Insecure.add(h));
    list('block').forEach((h) => raw.v1Blocked.add(h));
    const s = list('search');
    if (s.length > 0) raw.search = s;
  }
}

/** Does prefix match name at a path-component boundary (or as a *.domain wildcard)? */
export function prefixMatches(prefix: string, name: string): boolean {
  if (prefix.startsWith('*.')) {
    const host = name.split('/')[0]!;
    return host.endsWith(prefix.slice(1));
  }
  return name === prefix || name.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`);
}

function splitName(name: string): { registry: string; repository: string } {
  const i = name.indexOf('/');
  return i === -1 ? { registry: name, repository: '' } : { registry: name.slice(0, i), repository: name.slice(i + 1) };
}

export function buildRegistriesConfig(raw: RawConfig): RegistriesConfig {
  const entries = [...raw.registries.values()];
  const find = (name: string): RegistryEntry | undefined => {
    let best: RegistryEntry | undefined;
    for (const e of entries) {
      if (prefixMatches(e.prefix, name) && (!best || e.prefix.length > best.prefix.length)) best = e;
    }
    return best;
  };
  const rewrite = (e: RegistryEntry, name: string, location: string): string => {
    const matched = e.prefix.startsWith('*.') ? name.split('/')[0]! : e.prefix;
    return location + name.slice(matched.length);
  };
  const mirrorsOf = (ref: RefLike): Array<{ name: string; insecure: boolean }> => {
    const name = `${ref.registry}/${ref.repository}`;
    const e = find(name);
    if (!e) return [];
    return e.mirrors
      .filter((m) => {
        const mode = e.mirrorByDigestOnly ? 'digest-only' : m.pullFromMirror;
        return mode === 'all' || (mode === 'digest-only' ? ref.digest !== undefined : ref.digest === undefined);
      })
      .map((m) => ({ name: rewrite(e, name, m.location), insecure: m.insecure }));
  };
  const config: RegistriesConfig = {
    registries: entries,
    unqualifiedSearchRegistries: raw.search ?? [],
    isInsecure(host) {
      if (raw.v1Insecure.has(host)) return true;
      if (find(host)?.insecure) return true;
      return entries.some((e) => (splitName(e.location).registry === host && e.insecure) ||
        e.mirrors.some((m) => m.insecure && splitName(m.location).registry === host));
    },
    isBlocked(host) {
      return raw.v1Blocked.has(host) || find(host)?.blocked === true;
    },
    mirrorsFor(ref) {
      return mirrorsOf(ref).map((m) => ({ host: splitName(m.name).registry, insecure: m.insecure }));
    },
    endpointsFor(ref) {
      const name = `${ref.registry}/${ref.repository}`;
      const e = find(name);
      if (raw.v1Blocked.has(ref.registry) || e?.blocked) {
        throw new BerthError('PERMISSION_DENIED', `registry ${ref.registry} is blocked by registries.conf (pulling ${name})`, {
          details: { registry: ref.registry, prefix: e?.prefix },
        });
      }
      const out: Endpoint[] = mirrorsOf(ref).map((m) => ({ ...splitName(m.name), insecure: m.insecure, mirror: true }));
      const primary = e ? rewrite(e, name, e.prefix.startsWith('*.') ? name.split('/')[0]! : e.location) : name;
      const p = splitName(primary);
      out.push({ ...p, insecure: config.isInsecure(p.registry), mirror: false });
      return out;
    },
  };
  return config;
}

/** Parses registries.conf text (exposed for tests and for `berth info`). */
export function parseRegistriesConf(files: Array<{ path: string; text: string }>): RegistriesConfig {
  const raw: RawConfig = { registries: new Map(), v1Insecure: new Set(), v1Blocked: new Set() };
  for (const f of files) mergeFile(raw, parseToml(f.text, f.path), f.path);
  return buildRegistriesConfig(raw);
}

/**
 * Reads the main file and the drop-in directory (missing ones are fine). paths overrides
 * the defaults: { file, dir } (tests, or REGISTRIES_CONFIG_PATH-style overrides).
 */
export async function loadRegistriesConfig(paths: { file?: string; dir?: string } = {}): Promise<RegistriesConfig> {
  const file = paths.file ?? DEFAULT_REGISTRIES_CONF;
  const dir = paths.dir ?? DEFAULT_REGISTRIES_CONF_DIR;
  const files: Array<{ path: string; text: string }> = [];
  const tryRead = async (p: string): Promise<void> => {
    try {
      files.push({ path: p, text: await readFile(p, 'utf8') });
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw new BerthError('PERMISSION_DENIED', `cannot read ${p}: ${(e as Error).message}`, { cause: e });
    }
  };
  await tryRead(file);
  let names: string[] = [];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.conf')).sort();
  } catch (e) {
    if (!isErrno(e, 'ENOENT') && !isErrno(e, 'ENOTDIR')) throw new BerthError('PERMISSION_DENIED', `cannot read ${dir}: ${(e as Error).message}`, { cause: e });
  }
  for (const n of names) await tryRead(join(dir, n));
  return parseRegistriesConf(files);
}
