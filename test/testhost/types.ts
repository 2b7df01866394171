/**
 * @module testhost/types
 * Public types of the test-host harness: the options a test host boots with and the
 * handle tests drive it through. A test host is systemd booted in a systemd-nspawn
 * container that shares the host's /usr (see test/testhost/README.md).
 */
import type { ErrorCode } from '../../src/base/errors.ts';
import type { ExecResult } from '../../src/base/exec.ts';

export interface TestHostBind {
  /** Path on the host. */
  host: string;
  /** Path inside the test host (default: same as `host`). */
  target?: string;
  ro?: boolean;
}

export interface TestHostOptions {
  /** Machine name, hostname and cgroup suffix (`testhost.NAME`); [a-z0-9-], at most 48 chars. */
  name: string;
  /** Extra bind mounts (the repository checkout is always bound read-write at its own path). */
  binds?: TestHostBind[];
  /** Host directory bound to /var/lib/machines, so nested machines survive a reboot. */
  persistentMachinesDir?: string;
  /** Host directories bound read-write into the test host; their content survives a reboot. */
  persistentDirs?: Array<{ host: string; target: string }>;
  /** Make MemoryMax= & co. enforced (remounts the memory v1 controller rw inside + daemon-reexec). */
  memoryEnforcement?: boolean;
  /** Enable systemd-networkd inside (default true): DHCP/NAT for nested `--network-veth` machines. */
  networkd?: boolean;
  /** Deadline for one boot until `systemctl is-system-running` is running/degraded (default 60 s). */
  timeoutMs?: number;
}

export interface TestHostRunOptions {
  /** Environment for the command (passed with `--setenv`; the unit's own PATH is systemd's default). */
  env?: Record<string, string>;
  /** Data fed to the command's stdin. Without it, stdin is empty. */
  input?: string | Buffer;
  /** Working directory inside (default: the repository root, so `./bin/berth` works). */
  cwd?: string;
  /** Unit properties, e.g. `MemoryMax=64M` (run() only). */
  properties?: string[];
  /** User to run as (run() only; `--uid=`). */
  user?: string;
  /** Unit name (run() only; default: systemd picks run-uN.service). */
  unit?: string;
  /** Kill the command after this many ms (run(): also RuntimeMaxSec= on the unit). */
  timeoutMs?: number;
  /** Throw on a non-zero exit (default true, like base/exec `run()`). */
  reject?: boolean;
  errorCode?: ErrorCode;
}

export interface PoweroffOptions {
  /** Wait this long for a clean power-off before SIGKILL (default 30 s). */
  timeoutMs?: number;
  /** Keep the state directory (console.log) after power-off (default: env BERTH_TESTHOST_KEEP=1). */
  keepState?: boolean;
}

export interface TestHost {
  readonly name: string;
  /** PID of the test host's PID 1 (systemd) as seen from the host; changes on reboot(). */
  readonly leaderPid: number;
  /** PID of the systemd-nspawn process. */
  readonly nspawnPid: number;
  /** Temporary directory with console.log and the preset file. */
  readonly stateDir: string;
  /** How long the last boot took until running/degraded. */
  readonly bootMs: number;
  /** State `systemctl is-system-running` reported at the end of the last boot. */
  readonly bootState: string;
  readonly options: Readonly<TestHostOptions>;
  /** Runs argv as a transient service unit inside (sits in the test host's cgroups). */
  run(argv: readonly string[], opts?: TestHostRunOptions): Promise<ExecResult>;
  /** Runs argv in the test host's namespaces with a clean environment, without a unit. */
  exec(argv: readonly string[], opts?: TestHostRunOptions): Promise<ExecResult>;
  /** Clean reboot (SIGRTMIN+5 to systemd), then boots again with the same options; returns ms. */
  reboot(): Promise<number>;
  /** Clean power-off (SIGRTMIN+4), SIGKILL after a deadline, removes cgroups; returns ms. Idempotent. */
  poweroff(opts?: PoweroffOptions): Promise<number>;
  /** Makes memory limits enforced (see TestHostOptions.memoryEnforcement). Idempotent. */
  enableMemoryEnforcement(): Promise<void>;
  /** Console output of systemd inside (all boots), ANSI colours removed; last `lines` lines if given. */
  consoleLog(lines?: number): string;
  readonly running: boolean;
}
