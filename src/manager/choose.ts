/**
 * @module manager/choose
 * Which runtime serves a caller, as a pure function: root → `nspawn`, any other user →
 * `bwrap`; `--runtime NAME` (then `BERTH_RUNTIME`) overrides when that backend can work for
 * that caller. nspawn needs root (it writes /etc/systemd/nspawn and talks to PID 1's
 * manager); bwrap runs an unprivileged user's containers under their own systemd user
 * manager, which root does not have.
 */
import { BerthError } from '../base/errors.ts';

export interface RuntimeChoiceInput {
  /** Effective UID of the caller. */
  uid: number;
  /** --runtime NAME */
  flag?: string;
  /** $BERTH_RUNTIME */
  env?: string;
  /** Names the registry knows. */
  known: readonly string[];
}

/** What each backend needs of the caller (checked before the override is honoured). */
const NEEDS: Readonly<Record<string, { root: boolean; why: string }>> = {
  nspawn: { root: true, why: 'the nspawn runtime runs system services (systemd-nspawn@NAME.service) and needs root; as a user, berth uses the bwrap runtime (drop --runtime/BERTH_RUNTIME)' },
  bwrap: { root: false, why: "the bwrap runtime runs a user's containers under that user's systemd manager; root's containers use the nspawn runtime (as root, see a user's with `--user NAME`)" },
};

/** The runtimes that can serve this caller, default first. */
export function runtimesFor(uid: number): string[] {
  return uid === 0 ? ['nspawn'] : ['bwrap'];
}

export function chooseRuntime(i: RuntimeChoiceInput): string {
  const asked = i.flag ?? (i.env !== undefined && i.env !== '' ? i.env : undefined);
  const source = i.flag !== undefined ? '--runtime' : 'BERTH_RUNTIME';
  if (asked === undefined) return runtimesFor(i.uid)[0]!;
  if (!i.known.includes(asked)) {
    throw new BerthError('INVALID_ARGUMENT', `${source}: unknown runtime "${asked}" (known: ${[...i.known].sort().join(', ')})`, { details: { runtime: asked } });
  }
  const need = NEEDS[asked];
  if (need && need.root !== (i.uid === 0)) throw new BerthError('PERMISSION_DENIED', `${source}=${asked}: ${need.why}`, { details: { runtime: asked, uid: i.uid } });
  return asked;
}
