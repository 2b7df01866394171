/**
 * @module registry/auth-file
 * Registry credentials in the auth.json format Podman, Skopeo and Docker share:
 *   {"auths": {"quay.io": {"auth": base64("user:pass")}, "r.example.com/team": {"identitytoken": "..."}}}
 *
 * Lookup reads, in order, $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
 * ~/.config/containers/auth.json and ~/.docker/config.json; the first file with a matching
 * entry wins. Within a file the most specific key wins: host/ns/repo, then host/ns, then
 * host. Docker's legacy keys (`https://index.docker.io/v1/`, any `https://host/...`) are
 * normalized to the host, and docker.io also matches index.docker.io / registry-1.docker.io.
 * Docker credential helpers (credsStore/credHelpers) are not supported.
 *
 * Login writes to $REGISTRY_AUTH_FILE if set, else $XDG_RUNTIME_DIR/containers/auth.json
 * (what `podman login` does, so both tools see each other's logins), else
 * ~/.config/containers/auth.json. Writes are atomic (temp + fsync + rename), mode 0600, the
 * directory is created 0700, and unknown keys in the file are preserved.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { BerthError } from '../base/errors.ts';
import { ensureDir, isErrno, writeFileAtomic } from '../base/fs.ts';
import type { Credentials } from './types.ts';

type Env = Record<string, string | undefined>;

interface AuthEntry {
  auth?: string;
  identitytoken?: string;
  username?: string;
  password?: string;
}

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  [k: string]: unknown;
}

const DOCKER_HUB_ALIASES = ['docker.io', 'index.docker.io', 'registry-1.docker.io'];

/** Files consulted by lookupCredentials, in order. */
export function authFileCandidates(env: Env = process.env, home: string = homedir()): string[] {
  const out: string[] = [];
  if (env.REGISTRY_AUTH_FILE) out.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) out.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  out.push(join(home, '.config', 'containers', 'auth.json'));
  out.push(join(home, '.docker', 'config.json'));
  return out;
}

/** Where `berth login` writes (see module comment). */
export function defaultLoginFile(env: Env = process.env, home: string = homedir()): string {
  if (env.REGISTRY_AUTH_FILE) return env.REGISTRY_AUTH_FILE;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json');
  return join(home, '.config', 'containers', 'auth.json');
}

/** `https://index.docker.io/v1/` → `index.docker.io`; `quay.io/org` stays. */
export function normalizeAuthKey(key: string): string {
  const m = /^https?:\/\/([^/]+)/.exec(key);
  let k = m ? m[1]! : key.replace(/\/+$/, '');
  const host = k.split('/')[0]!;
  if (DOCKER_HUB_ALIASES.includes(host)) k = `docker.io${k.slice(host.length)}`;
  return k;
}

async function readAuthFile(file: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) return undefined;
    throw new BerthError('PERMISSION_DENIED', `cannot read credentials file ${file}: ${(e as Error).message}`, { cause: e });
  }
  if (text.trim() === '') return {};
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new BerthError('INVALID_ARGUMENT', `credentials file ${file} is not valid JSON: ${(e as Error).message}`, { cause: e, details: { file } });
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) {
    throw new BerthError('INVALID_ARGUMENT', `credentials file ${file} must hold a JSON object`, { details: { file } });
  }
  const auths = (j as AuthFile).auths;
  if (auths !== undefined && (typeof auths !== 'object' || auths === null || Array.isArray(auths))) {
    throw new BerthError('INVALID_ARGUMENT', `credentials file ${file}: "auths" must be an object`, { details: { file } });
  }
  return j as AuthFile;
}

function decodeEntry(e: AuthEntry, key: string, file: string): Credentials | undefined {
  if (typeof e.identitytoken === 'string' && e.identitytoken !== '') return { identitytoken: e.identitytoken };
  if (typeof e.auth === 'string' && e.auth !== '') {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i <= 0) throw new BerthError('INVALID_ARGUMENT', `credentials file ${file}: entry "${key}" has a malformed "auth" (want base64 of user:password)`, { details: { file, key } });
    return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
  }
  if (typeof e.username === 'string' && typeof e.password === 'string') return { username: e.username, password: e.password };
  return undefined;
}

/** Keys to try for host (+repo), most specific first, all normalized. */
function wantedKeys(host: string, repo?: string): string[] {
  const h = normalizeAuthKey(host);
  const keys: string[] = [];
  if (repo) {
    const parts = repo.split('/');
    for (let n = parts.length; n > 0; n--) keys.push(`${h}/${parts.slice(0, n).join('/')}`);
  }
  keys.push(h);
  return keys;
}

/** Credentials for a registry host (as in references: docker.io, quay.io, localhost:5000). */
export async function lookupCredentials(host: string, repo?: string, opts: { files?: string[] } = {}): Promise<Credentials | undefined> {
  const wanted = wantedKeys(host, repo);
  for (const file of opts.files ?? authFileCandidates()) {
    const f = await readAuthFile(file);
    if (!f?.auths) continue;
    const byKey = new Map<string, [string, AuthEntry]>();
    for (const [k, v] of Object.entries(f.auths)) {
      const nk = normalizeAuthKey(k);
      if (!byKey.has(nk) || k === nk) byKey.set(nk, [k, v]);
    }
    for (const w of wanted) {
      const hit = byKey.get(w);
      if (!hit) continue;
      const creds = decodeEntry(hit[1] ?? {}, hit[0], file);
      if (creds) return creds;
    }
  }
  return undefined;
}

async function updateAuthFile(file: string, fn: (auths: Record<string, AuthEntry>) => boolean): Promise<boolean> {
  const f = (await readAuthFile(file)) ?? {};
  const auths = { ...(f.auths ?? {}) };
  const changed = fn(auths);
  if (!changed) return false;
  await ensureDir(dirname(file), 0o700);
  await writeFileAtomic(file, `${JSON.stringify({ ...f, auths }, null, '\t')}\n`, { mode: 0o600 });
  return true;
}

/** Stores user:pass for host (or host/repo) in file, replacing any equivalent key. */
export async function writeLogin(file: string, host: string, username: string, password: string): Promise<void> {
  if (username.includes(':')) throw new BerthError('INVALID_ARGUMENT', `username for ${host} must not contain ":"`);
  const key = normalizeAuthKey(host);
  await updateAuthFile(file, (auths) => {
    for (const k of Object.keys(auths)) if (normalizeAuthKey(k) === key) delete auths[k];
    auths[key] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
    return true;
  });
}

/** Removes host's entries (all equivalent keys). Returns false when there was none. */
export async function removeLogin(file: string, host: string): Promise<boolean> {
  const key = normalizeAuthKey(host);
  return updateAuthFile(file, (auths) => {
    let removed = false;
    for (const k of Object.keys(auths)) {
      if (normalizeAuthKey(k) === key) {
        delete auths[k];
        removed = true;
      }
    }
    return removed;
  });
}

/** Removes every entry (`berth logout --all`). */
export async function removeAllLogins(file: string): Promise<boolean> {
  return updateAuthFile(file, (auths) => {
    const had = Object.keys(auths).length > 0;
    for (const k of Object.keys(auths)) delete auths[k];
    return had;
  });
}
