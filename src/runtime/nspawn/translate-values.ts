/**
 * @module runtime/nspawn/translate-values
 * Validation of the individual values the nspawn translators write: paths, signals,
 * hostnames, users, unit names. Each refuses with INVALID_ARGUMENT (or UNSUPPORTED for what
 * systemd-nspawn cannot express) and names the offending field.
 */
import { BerthError } from '../../base/errors.ts';
import { assertSafeValue } from '../../unit/quote.ts';

const invalid = (field: string, msg: string): never => {
  throw new BerthError('INVALID_ARGUMENT', `${field}: ${msg}`, { details: { field } });
};

/** Absolute, no `.`/`..` components, no control characters, no edge whitespace. */
export function checkAbsPath(field: string, p: string): string {
  assertSafeValue(field, p, { allowTab: false });
  if (!p.startsWith('/')) invalid(field, `path "${p}" must be absolute`);
  if (p.split('/').some((c) => c === '.' || c === '..')) invalid(field, `path "${p}" must not contain "." or ".." components`);
  if (p.trim() !== p) invalid(field, `path "${p}" must not begin or end with whitespace`);
  const norm = p.replace(/\/+/g, '/');
  return norm.length > 1 ? norm.replace(/\/$/, '') : norm;
}

/** Signal names as systemd parses them: SIGTERM, SIGRTMIN+3, … */
export function checkSignal(field: string, s: string): string {
  if (!/^SIG(?:[A-Z]{2,8}|USR[12]|RTMIN(?:\+\d{1,2})?|RTMAX(?:-\d{1,2})?)$/.test(s)) invalid(field, `"${s}" is not a signal name`);
  return s;
}

/** Hostname rules of systemd's hostname_is_valid(): ≤ 64, labels of [A-Za-z0-9_-]. */
export function checkHostname(field: string, h: string): string {
  if (h.length === 0 || h.length > 64 || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(h)) {
    invalid(field, `"${h}" is not a valid hostname`);
  }
  return h;
}

/** A unit name berth may reference (Slice=, Requires=, After=). */
export function checkUnitName(field: string, u: string, suffix?: string): string {
  if (!/^[A-Za-z0-9:_.\\@-]+\.[a-z]+$/.test(u) || u.length > 255) invalid(field, `"${u}" is not a valid unit name`);
  if (suffix !== undefined && !u.endsWith(suffix)) invalid(field, `"${u}" must end in "${suffix}"`);
  return u;
}

/** tmpfs mount options: comma-separated words, nothing that could end the value early. */
export function checkMountOptions(field: string, o: string): string {
  if (!/^[A-Za-z0-9=,._+-]*$/.test(o)) invalid(field, `mount options "${o}" contain unsupported characters`);
  return o;
}

/**
 * The `User=` value for the .nspawn file, or undefined for root.
 *
 * systemd-nspawn 252's User= takes a *name* and resolves it by running `getent passwd`
 * inside the container (verified: busybox images, which have no getent, fail with
 * "Failed to resolve user" even for names present in /etc/passwd, and numeric ids fail
 * everywhere). So: root (by name or 0[:0]) → no User= line; a plain name → User=NAME
 * (works in glibc images); numeric ids or a :GROUP part → UNSUPPORTED until berth ships an
 * init that switches ids itself.
 */
/**
 * USER[:GROUP] for berth-helper setuser (names or numbers, Docker's `-u`), or undefined for root.
 * The charset keeps it one safe word in Parameters=.
 */
export function setuserSpec(field: string, user: string | undefined): string | undefined {
  if (user === undefined || user === '') return undefined;
  if (['root', '0', '0:0', 'root:root', 'root:0', '0:root'].includes(user)) return undefined;
  assertSafeValue(field, user, { allowTab: false });
  const parts = user.split(':');
  if (parts.length > 2 || parts.some((p) => !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/.test(p))) {
    invalid(field, `"${user}" is not USER[:GROUP] (names or numeric ids)`);
  }
  return user;
}

export function nspawnUser(field: string, user: string | undefined): string | undefined {
  if (user === undefined || user === '') return undefined;
  if (['root', '0', '0:0', 'root:root', 'root:0', '0:root'].includes(user)) return undefined;
  assertSafeValue(field, user, { allowTab: false });
  const [name, group] = user.split(':', 2);
  if (group !== undefined || /^\d+$/.test(name ?? '')) {
    throw new BerthError('UNSUPPORTED', `${field} "${user}": systemd-nspawn's User= accepts only a user name (no numeric id, no group)`, {
      details: { field },
    });
  }
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(name ?? '')) invalid(field, `"${user}" is not a valid user name`);
  return name;
}
