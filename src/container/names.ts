/**
 * @module container/names
 * Container names are systemd machine names and unit instance names at once:
 * `systemd-nspawn@NAME.service`, `/etc/systemd/nspawn/NAME.nspawn`, `/var/lib/machines/NAME`.
 *
 * The rule is deliberately stricter than systemd's `machine_name_is_valid()` (hostname
 * rules, ≤ 64 chars, `[A-Za-z0-9_-]` labels joined by single dots) so that every valid
 * name is also a valid unit instance *verbatim*: systemd-nspawn@.service passes `%i`
 * (not `%I`) to `--machine=`, and machinectl builds the unit name without escaping, so the
 * instance must equal the machine name. `unitNameFor` is therefore the identity on the
 * name; `systemd-escape` would turn `-` into `\x2d` and break that equality.
 */
import { randomInt } from 'node:crypto';
import { BerthError } from '../base/errors.ts';

export const MACHINE_NAME_MAX = 64;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/;

/** Throws INVALID_ARGUMENT with the reason when n is not a usable machine name. */
export function validateMachineName(n: string): string {
  const bad = (why: string): never => {
    throw new BerthError('INVALID_ARGUMENT', `invalid container name "${n}": ${why}`, { details: { name: n } });
  };
  if (n.length === 0) bad('empty');
  if (n.length > MACHINE_NAME_MAX) bad(`longer than ${MACHINE_NAME_MAX} characters`);
  if (n.startsWith('.') || n.startsWith('-') || n.startsWith('_')) bad('must start with a letter or digit');
  if (n.includes('..')) bad('contains ".."');
  if (n.endsWith('.')) bad('must not end with "."');
  if (!NAME_RE.test(n)) bad('only letters, digits, "-", "_" and single "." are allowed');
  return n;
}

export function isValidMachineName(n: string): boolean {
  try {
    validateMachineName(n);
    return true;
  } catch {
    return false;
  }
}

/** `systemd-nspawn@NAME.service` (identity escaping; see module doc). */
export function unitNameFor(name: string): string {
  return `systemd-nspawn@${validateMachineName(name)}.service`;
}

/** Inverse of unitNameFor; undefined for other units. */
export function nameFromUnit(unit: string): string | undefined {
  const m = /^systemd-nspawn@(.+)\.service$/.exec(unit);
  return m?.[1] !== undefined && isValidMachineName(m[1]) ? m[1] : undefined;
}

const ADJECTIVES = [
  'agile', 'bold', 'brave', 'bright', 'busy', 'calm', 'clever', 'cool', 'crisp', 'eager', 'fair', 'fancy',
  'fond', 'gentle', 'happy', 'hardy', 'jolly', 'keen', 'kind', 'lively', 'lucid', 'merry', 'modest', 'nimble',
  'noble', 'patient', 'polite', 'proud', 'quick', 'quiet', 'rapid', 'ready', 'serene', 'sharp', 'shy', 'silent',
  'sleepy', 'smart', 'steady', 'sunny', 'swift', 'tender', 'tidy', 'vivid', 'warm', 'wise', 'witty', 'zen',
];
const NOUNS = [
  'anchor', 'barge', 'beacon', 'buoy', 'cabin', 'canal', 'cargo', 'compass', 'cove', 'crane', 'deck', 'dock',
  'dory', 'ferry', 'fjord', 'galley', 'harbor', 'hull', 'jetty', 'keel', 'kelp', 'lagoon', 'lantern', 'mast',
  'mooring', 'oar', 'otter', 'pier', 'pilot', 'quay', 'raft', 'reef', 'rudder', 'sail', 'schooner', 'shoal',
  'skiff', 'sloop', 'tide', 'tug', 'wharf', 'yacht',
];

/** Docker-style `adjective-noun` (with `-`: `_` is legal too, but `-` reads as a hostname). */
export function generateName(taken: (n: string) => boolean = () => false): string {
  for (let i = 0; i < 100; i++) {
    const base = `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}`;
    const n = i < 10 ? base : `${base}-${randomInt(1000)}`;
    if (!taken(n)) return n;
  }
  throw new BerthError('ALREADY_EXISTS', 'could not generate an unused container name; pass --name');
}
