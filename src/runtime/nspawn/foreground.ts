/**
 * @module runtime/nspawn/foreground
 * Attached `berth run` (no -d): systemd-nspawn as berth's child, stdio connected, exit
 * status propagated. Decision: no unit for the foreground case, so it works the same with
 * or without systemd as PID 1 — with systemd, nspawn registers with machined and gets its
 * own scope (machine-NAME.scope, resource limits as --property=); without it,
 * `--keep-unit --register=no` (the only mode that works there; limits are not enforced).
 * The same NAME.nspawn settings apply (nspawn reads /etc/systemd/nspawn/NAME.nspawn for
 * -M NAME). SIGINT/SIGTERM/SIGHUP are forwarded to nspawn, which stops the container with
 * its KillSignal; with -t the terminal is raw and Ctrl-C reaches the container itself.
 */
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { BerthError } from '../../base/errors.ts';
import { mountArgs, mountRootfs, umountRootfs, type RootDirs, type RootfsPlan } from './rootfs.ts';
import { systemdIsPid1 } from './systemd.ts';
import { setup as networkSetup, teardown as networkTeardown, type RuntimeNetwork } from '../../network/index.ts';
import { forwardSignals, run } from '../../base/exec.ts';
import type { VolumeStep, VolumeSteps } from './translate-volumes.ts';
import { startArgv, type SeccompStart } from './seccomp-start.ts';

export interface ForegroundOptions {
  name: string;
  plan: RootfsPlan;
  tty: boolean;
  stdin: boolean;
  /** Scope properties (MemoryMax=…, CPUQuota=…, TasksMax=…), used when systemd is PID 1. */
  properties?: string[];
  slice?: string;
  /** Network zone: set up before nspawn starts (inside it), torn down after it exits. */
  network?: RuntimeNetwork;
  /** Volume staging (translate-volumes.ts): run before nspawn starts and after it ends. */
  volumes?: VolumeSteps;
  /** nspawn through nspawn-start (the cached seccomp filter; seccomp.ts), as the unit does. */
  start?: SeccompStart;
  /**
   * Without systemd as PID 1: the rootfs is mounted in nspawn's own mount namespace (by
   * berth-helper private-tmpfs --mount, these directories made in it), not on the host.
   * create() left it unmounted (mountInForeground). Undefined: mounted on the host.
   */
  dirs?: RootDirs;
}

export function foregroundArgv(o: ForegroundOptions, withSystemd: boolean): string[] {
  // The same namespace entry as the unit's ExecStart= (see translate-dropins).
  const enter = o.network ? o.network.enter : [];
  const nspawn = o.start === undefined ? ['systemd-nspawn'] : startArgv(o.start);
  const argv = [...enter, ...nspawn, '--quiet', `--machine=${o.name}`, `--directory=${o.plan.target}`];
  if (withSystemd) {
    argv.push('--register=yes');
    for (const p of o.properties ?? []) argv.push(`--property=${p}`);
    if (o.slice) argv.push(`--slice=${o.slice}`);
  } else {
    argv.push('--keep-unit', '--register=no');
  }
  argv.push(o.tty ? '--console=interactive' : '--console=pipe');
  if (withSystemd) return argv;
  // Without systemd, /run is usually not a tmpfs and nspawn then refuses to clean up
  // /run/systemd/nspawn/propagate/NAME ("Attempted to remove disk file system…") and
  // leaves it behind. Give nspawn a private tmpfs there (machinectl bind, its only user,
  // needs machined anyway). berth-helper private-tmpfs execs nspawn (no process of its
  // own; it replaced unshare + sh + mkdir + mount), so signals reach nspawn directly.
  // With dirs, the same helper run mounts the rootfs there too: it needs no unmount, and
  // however berth ends (even SIGKILL), nothing stays mounted on the host.
  const mount = o.dirs ? ['--mount', ...mountArgs(o.plan, o.dirs).slice(1)] : []; // without the word "mount"
  return [o.plan.helper, 'private-tmpfs', '/run/systemd/nspawn', ...mount, '--', ...argv];
}

/** Runs the container attached; resolves with its exit status. */
export async function runForeground(o: ForegroundOptions): Promise<number> {
  const withSystemd = systemdIsPid1();
  // create() leaves dirs only without systemd: foregroundArgv then mounts in nspawn's namespace
  const onHost = withSystemd || o.dirs === undefined;
  if (onHost) await mountRootfs(o.plan);
  const argv = foregroundArgv(o, withSystemd);
  try {
    await runSteps(o.volumes?.pre ?? []);
    if (o.network) await networkSetup(o.network);
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(argv[0] as string, argv.slice(1), { stdio: [o.stdin || o.tty ? 'inherit' : 'ignore', 'inherit', 'inherit'] });
      const done = forwardSignals(child, { tty: o.tty });
      child.on('error', (e) => {
        done();
        reject(new BerthError('FAILED_PRECONDITION', `systemd-nspawn: ${e.message}`, { cause: e }));
      });
      child.on('close', (code, sig) => {
        done();
        resolve(code ?? 128 + (sig ? osConstants.signals[sig] ?? 1 : 1));
      });
    });
  } finally {
    if (o.network) await networkTeardown(o.network);
    await runSteps(o.volumes?.post ?? []).catch(() => {});
    if (onHost) await umountRootfs(o.plan.helper, o.plan.target).catch(() => {});
  }
}

/** The same steps the unit's ExecStartPre=/ExecStopPost= run, in order. */
async function runSteps(steps: readonly VolumeStep[]): Promise<void> {
  for (const s of steps) await run(s.argv, { reject: !s.ignoreFailure, timeoutMs: 30_000, errorCode: 'FAILED_PRECONDITION' });
}
