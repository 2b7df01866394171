/**
 * @module container/parse-flags
 * Parsers for `berth run`/`create` flag values with Docker's meaning, each returning a typed
 * value or throwing INVALID_ARGUMENT that names the flag and the bad value. Pure: the
 * process environment and file contents are passed in.
 */
import { BerthError } from '../base/errors.ts';
import type { BindMountSpec, MountSpec, RestartPolicy } from './spec.ts';

const bad = (flag: string, value: string, why: string): never => {
  throw new BerthError('INVALID_ARGUMENT', `${flag} "${value}": ${why}`, { details: { flag, value } });
};

const MEM_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `--memory 512M|1g|1.5G|1024` (Docker: binary units b/k/m/g, optional "b"/"ib") → bytes. */
export function parseMemory(s: string, flag = '--memory'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?$/i.exec(s.trim());
  if (!m) return bad(flag, s, 'expected a size like 512m, 1g, 1.5G or a number of bytes');
  const n = Math.floor(Number(m[1]) * (MEM_UNITS[(m[2] ?? '').toLowerCase()] ?? 1));
  if (!Number.isSafeInteger(n) || n <= 0) return bad(flag, s, 'must be a positive size');
  return n;
}

/** `--cpus 1.5` → CPUQuota percent (150). */
export function parseCpus(s: string, flag = '--cpus'): number {
  if (!/^\d+(\.\d+)?$|^\.\d+$/.test(s.trim())) return bad(flag, s, 'expected a number of CPUs like 0.5 or 2');
  const pct = Math.round(Number(s) * 100);
  if (pct <= 0) return bad(flag, s, 'must be at least 0.01');
  return pct;
}

/** `--pids-limit N`; 0 or -1 mean unlimited (undefined), like Docker. */
export function parsePidsLimit(s: string, flag = '--pids-limit'): number | undefined {
  if (!/^-?\d+$/.test(s.trim())) return bad(flag, s, 'expected an integer');
  const n = Number(s);
  if (n === 0 || n === -1) return undefined;
  if (n < 0 || !Number.isSafeInteger(n)) return bad(flag, s, 'must be positive (or -1 for unlimited)');
  return n;
}

function checkEnvKey(flag: string, raw: string, k: string): void {
  if (k === '') bad(flag, raw, 'variable name is empty');
  if (/\s/.test(k)) bad(flag, raw, 'variable name contains whitespace');
}

/**
 * `-e K=V` → "K=V"; `-e K` → "K=<value from environ>", or undefined when K is unset there
 * (Docker then leaves it out).
 */
export function parseEnvFlag(s: string, environ: Readonly<Record<string, string | undefined>>, flag = '-e'): string | undefined {
  const eq = s.indexOf('=');
  const k = eq < 0 ? s : s.slice(0, eq);
  checkEnvKey(flag, s, k);
  if (eq >= 0) return s;
  const v = environ[k];
  return v === undefined ? undefined : `${k}=${v}`;
}

/**
 * `--env-file F` in Docker's format: one `K=V` or `K` per line, `#` comments and blank lines
 * ignored, leading whitespace dropped, no quote processing (quotes are part of the value).
 */
export function parseEnvFile(text: string, path: string, environ: Readonly<Record<string, string | undefined>>): string[] {
  const out: string[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.replace(/^\s+/, '');
    if (t === '' || t.startsWith('#')) return;
    const v = parseEnvFlag(t, environ, `--env-file ${path}:${i + 1}`);
    if (v !== undefined) out.push(v);
  });
  return out;
}

/**
 * `-v HOST:CTR[:OPTS]` → a bind mount. HOST must be absolute (no named volumes). OPTS,
 * comma-separated, with Podman's meaning: `ro`|`rw`, `idmap` (map the container's UIDs onto
 * the source's owners), `U` (chown the source to the container's root), `suid`|`nosuid`,
 * `dev`|`nodev` (nosuid and nodev by default), `exec`|`noexec`, `rbind`|`bind` (always
 * recursive), and `z`|`Z` (SELinux relabelling; accepted and ignored, as Podman does on
 * hosts without SELinux).
 */
export function parseVolume(s: string, flag = '-v'): BindMountSpec {
  const parts = s.split(':');
  if (parts.length < 2 || parts.length > 3) return bad(flag, s, 'expected HOST:CONTAINER[:OPTIONS]');
  const [source = '', target = '', mode = ''] = parts;
  if (!source.startsWith('/')) {
    return bad(flag, s, `host path "${source}" must be absolute (named volumes are not supported)`);
  }
  if (!target.startsWith('/')) return bad(flag, s, `container path "${target}" must be absolute`);
  const m: BindMountSpec = { type: 'bind', source, target, readonly: false };
  const seen = new Set<string>();
  for (const o of mode === '' ? [] : mode.split(',')) {
    const group = VOLUME_OPTION_GROUP[o];
    if (group === undefined) {
      return bad(flag, s, `unsupported option "${o}" (use ro, rw, idmap, U, suid, nosuid, dev, nodev, exec, noexec, z, Z)`);
    }
    if (seen.has(group)) return bad(flag, s, `option "${o}" conflicts with an earlier one`);
    seen.add(group);
    switch (o) {
      case 'ro': m.readonly = true; break;
      case 'idmap': m.idmap = true; break;
      case 'U': m.chown = true; break;
      case 'suid': m.suid = true; break;
      case 'dev': m.dev = true; break;
      case 'noexec': m.noexec = true; break;
      default: break; // rw, nosuid, nodev, exec, bind, rbind, z, Z: the defaults
    }
  }
  return m;
}

/** Each -v option and the group of mutually exclusive options it belongs to. */
const VOLUME_OPTION_GROUP: Record<string, string> = {
  ro: 'rw', rw: 'rw', idmap: 'idmap', U: 'chown', suid: 'suid', nosuid: 'suid', dev: 'dev', nodev: 'dev',
  exec: 'exec', noexec: 'exec', bind: 'bind', rbind: 'bind', z: 'selinux', Z: 'selinux',
};

/** `--tmpfs PATH[:opts]`. */
export function parseTmpfs(s: string, flag = '--tmpfs'): Extract<MountSpec, { type: 'tmpfs' }> {
  const i = s.indexOf(':');
  const target = i < 0 ? s : s.slice(0, i);
  const options = i < 0 ? undefined : s.slice(i + 1);
  if (!target.startsWith('/')) return bad(flag, s, 'path must be absolute');
  if (options !== undefined && !/^[A-Za-z0-9=,._+-]*$/.test(options)) return bad(flag, s, 'options may only contain letters, digits and = , . _ + -');
  return options === undefined || options === '' ? { type: 'tmpfs', target } : { type: 'tmpfs', target, options };
}

/** `-u USER[:GROUP]` (names or numbers), returned as given after validation. */
export function parseUser(s: string, flag = '-u'): string {
  const parts = s.split(':');
  if (parts.length > 2 || parts.some((p) => !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(p))) {
    return bad(flag, s, 'expected USER or USER:GROUP (names or numeric ids)');
  }
  return s;
}

/** `--restart no|on-failure[:N]|always|unless-stopped` (unless-stopped ≡ always under systemd). */
export function parseRestart(s: string, flag = '--restart'): { policy: RestartPolicy; maxRetries?: number } {
  const [p, n, ...rest] = s.split(':');
  if (rest.length > 0) return bad(flag, s, 'too many ":"');
  if (p === 'on-failure') {
    if (n === undefined) return { policy: 'on-failure' };
    if (!/^\d+$/.test(n) || Number(n) < 1) return bad(flag, s, 'retry count must be a positive integer');
    return { policy: 'on-failure', maxRetries: Number(n) };
  }
  if (n !== undefined) return bad(flag, s, 'only on-failure takes a retry count');
  if (p === 'no' || p === 'always') return { policy: p };
  // systemd never restarts a unit that was stopped on purpose, which is unless-stopped.
  if (p === 'unless-stopped') return { policy: 'always' };
  return bad(flag, s, 'expected no, on-failure[:N], always or unless-stopped');
}

const SIGNALS = [
  'HUP', 'INT', 'QUIT', 'ILL', 'TRAP', 'ABRT', 'BUS', 'FPE', 'KILL', 'USR1', 'SEGV', 'USR2', 'PIPE', 'ALRM', 'TERM',
  'STKFLT', 'CHLD', 'CONT', 'STOP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'XCPU', 'XFSZ', 'VTALRM', 'PROF', 'WINCH', 'IO', 'PWR', 'SYS',
];
const SIGRTMIN = 34;
const SIGRTMAX = 64;

/** `--stop-signal SIG`: TERM, SIGTERM, 15, RTMIN+3 or 37 → canonical "SIGTERM" / "SIGRTMIN+3". */
export function parseSignal(s: string, flag = '--stop-signal'): string {
  const t = s.trim().toUpperCase();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n >= 1 && n <= SIGNALS.length) return `SIG${SIGNALS[n - 1]}`;
    if (n >= SIGRTMIN && n <= SIGRTMAX) return n === SIGRTMIN ? 'SIGRTMIN' : `SIGRTMIN+${n - SIGRTMIN}`;
    return bad(flag, s, 'no such signal number');
  }
  const name = t.startsWith('SIG') ? t.slice(3) : t;
  if (SIGNALS.includes(name)) return `SIG${name}`;
  if (name === 'IOT') return 'SIGABRT';
  if (name === 'POLL') return 'SIGIO';
  const rt = /^RTMIN(?:\+(\d+))?$/.exec(name) ?? /^RTMAX(?:-(\d+))?$/.exec(name);
  if (rt) {
    const off = Number(rt[1] ?? 0);
    const n = name.startsWith('RTMIN') ? SIGRTMIN + off : SIGRTMAX - off;
    if (n >= SIGRTMIN && n <= SIGRTMAX) return parseSignal(String(n), flag);
  }
  return bad(flag, s, 'unknown signal');
}

/** `--stop-timeout S` → whole seconds (≥ 0). */
export function parseStopTimeout(s: string, flag = '--stop-timeout'): number {
  if (!/^\d+$/.test(s.trim())) return bad(flag, s, 'expected a whole number of seconds');
  return Number(s);
}
