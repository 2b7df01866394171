/**
 * @module runtime/nspawn/seccomp-start
 * Names and argv of the cached-seccomp start (seccomp.ts has the design): pure, apart
 * from reading BERTH_RUN_DIR and finding systemd-nspawn.
 */
import { existsSync } from 'node:fs';

/** Where berth-helper appears inside the container as the first PID 1 (before the init). */
export const SECCOMP_INIT_TARGET = '/run/host/berth/seccomp-init';
/** Where the machine's filter file (empty: nspawn filtered itself) appears inside. */
export const SECCOMP_FILTER_TARGET = '/run/host/berth/seccomp.filter';

const NSPAWN_CANDIDATES = ['/usr/bin/systemd-nspawn', '/bin/systemd-nspawn'];

export function seccompDir(): string {
  return `${process.env.BERTH_RUN_DIR ?? '/run/berth'}/seccomp`;
}

/** Host path of a machine's filter file, written by nspawn-start at every start. */
export function machineFilterFile(name: string): string {
  return `${seccompDir()}/${name}.filter`;
}

/** The absolute path of systemd-nspawn (nspawn-start checks it against the cache). */
export function nspawnBinary(): string | undefined {
  return NSPAWN_CANDIDATES.find((p) => existsSync(p));
}

/** What translate needs to route a machine's start through nspawn-start. */
export interface SeccompStart {
  /** berth-helper: nspawn-start on the host, seccomp-init inside. */
  helper: string;
  /** Absolute path of systemd-nspawn. */
  nspawn: string;
  /** machineFilterFile(name) */
  filter: string;
  /**
   * `berth-helper mount`'s arguments (without the word "mount"): nspawn-start mounts the
   * machine's root first, in the unit's start process (no ExecStartPre= of its own).
   */
  mount?: readonly string[];
}

export function seccompStart(name: string, helper: string): SeccompStart | undefined {
  const nspawn = nspawnBinary();
  return nspawn === undefined ? undefined : { helper, nspawn, filter: machineFilterFile(name) };
}

/** argv prefix that replaces `systemd-nspawn`: the wrapper, then nspawn itself. Pure. */
export function startArgv(s: SeccompStart): string[] {
  const mount = s.mount && s.mount.length > 0 ? ['--mount', ...s.mount] : [];
  return [s.helper, 'nspawn-start', s.filter, ...mount, '--', s.nspawn];
}

