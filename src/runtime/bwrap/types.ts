/**
 * @module runtime/bwrap/types
 * What the bwrap translators need besides the ContainerSpec: the user, their subordinate
 * ID ranges, where the sandbox's files live, what the host allows (unprivileged port start,
 * delegated cgroup controllers) and published ports (the spec has no neutral field for
 * them yet). The I/O shell (host.ts) fills it in from /etc/subuid, sysctls and cgroupfs;
 * the translators only read it, so fixtures can state it whole.
 */

/** A block of IDs: `start`, `start+1`, … `start+count-1` (one /etc/subuid line). */
export interface IdRange {
  start: number;
  count: number;
}

export type { PortMapping } from '../runtime.ts';
import type { PortMapping } from '../runtime.ts';

export interface SandboxPaths {
  /** Layer snapshot directories, bottom first (same order as spec.image.chainIds). */
  lowerDirs: string[];
  /** The container's own writable layer, its overlay work dir and the mount point. */
  upper: string;
  work: string;
  merged: string;
  /** File the private network namespace is bound to (pasta joins it there). */
  netns: string;
  /** Where ExecStopPost= records how the last run ended (systemd forgets once it unloads the unit). */
  exitFile: string;
  /** The launcher script (LAUNCHER_SCRIPT, written by the shell). */
  launcher: string;
}

export interface Binaries {
  unshare: string;
  sh: string;
  bwrap: string;
  pasta: string;
  nsenter: string;
  mount: string;
}

export const DEFAULT_BINARIES: Readonly<Binaries> = {
  unshare: '/usr/bin/unshare',
  sh: '/bin/sh',
  bwrap: '/usr/bin/bwrap',
  pasta: '/usr/bin/pasta',
  nsenter: '/usr/bin/nsenter',
  mount: '/bin/mount',
};

export interface BwrapOptions {
  /** The user whose manager runs the unit: container root is this uid/gid. */
  user: { name: string; uid: number; gid: number };
  /** The user's first subordinate ranges (/etc/subuid, /etc/subgid): container IDs 1… */
  subuid: IdRange;
  subgid: IdRange;
  paths: SandboxPaths;
  /** ~/.config/systemd/user */
  unitDir: string;
  /** net.ipv4.ip_unprivileged_port_start (ports below need privileges the user lacks). */
  unprivilegedPortStart: number;
  /** Controllers in the user's delegated cgroup subtree (cgroup.controllers there). */
  delegatedControllers: string[];
  /** Where that list was read (named in the refusal). */
  cgroupPath?: string;
  publish?: PortMapping[];
  /** Static berth-setuser helper (bound read-only) for a non-root -u. */
  setuserHostPath?: string;
  binaries?: Partial<Binaries>;
}
