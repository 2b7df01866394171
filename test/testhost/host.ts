/**
 * @module testhost/host
 * A booted test host and its verbs: run (transient unit via systemd-run, so the command
 * sits in the test host's cgroups), exec (plain nsenter), reboot, poweroff and memory
 * enforcement. Power-off is SIGRTMIN+4 to the test host's PID 1, escalating to SIGKILL of
 * the whole cgroup tree; reboot is SIGRTMIN+5 (nspawn exits with 133) and a new boot with
 * the same options, which keeps whatever the persistent binds hold.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../src/base/errors.ts';
import { run, type ExecResult } from '../../src/base/exec.ts';
import { cgroupPids, createCgroups, destroyCgroups, killCgroups, removeCgroups } from './cgroup.ts';
import { nspawnArgv, repoRoot } from './nspawn-args.ts';
import { DEFAULT_PATH, processAlive, sleepSync, spawnNspawn, strayPids, waitExit, waitLeader, waitRunning, type NspawnProcess } from './process.ts';
import { releaseName, removePropagateDir, SIGNAL_POWEROFF, SIGNAL_REBOOT, track, untrack } from './registry.ts';
import type { PoweroffOptions, TestHost, TestHostOptions, TestHostRunOptions } from './types.ts';

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export class TestHostImpl implements TestHost {
  readonly name: string;
  readonly options: Readonly<TestHostOptions>;
  readonly stateDir: string;
  /** This test host's cgroups (one per hierarchy), created anew for each boot. */
  readonly cgroupDirs: readonly string[];
  leaderPid = 0;
  bootMs = 0;
  bootState = '';
  private proc: NspawnProcess | undefined;
  private stopping: Promise<number> | undefined;
  private memoryEnforced = false;

  constructor(options: TestHostOptions, stateDir: string, cgroupDirs: readonly string[]) {
    this.options = { ...options };
    this.name = options.name;
    this.stateDir = stateDir;
    this.cgroupDirs = cgroupDirs;
  }

  get nspawnPid(): number {
    return this.proc?.pid ?? 0;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exit === undefined;
  }

  get consolePath(): string {
    return join(this.stateDir, 'console.log');
  }

  consoleLog(lines?: number): string {
    let text = '';
    try {
      text = readFileSync(this.consolePath, 'utf8').replace(ANSI, '').replace(/\r/g, '');
    } catch {
      return '';
    }
    return lines === undefined ? text : text.split('\n').slice(-lines - 1).join('\n');
  }

  /** Boots (again); on failure kills what it started and throws with the console's tail. */
  async boot(): Promise<void> {
    const start = performance.now();
    const deadline = Date.now() + (this.options.timeoutMs ?? 60_000);
    const procs = createCgroups(this.cgroupDirs);
    this.proc = spawnNspawn(nspawnArgv(this.options, join(this.stateDir, 'preset')), procs, this.consolePath);
    this.stopping = undefined;
    this.memoryEnforced = false;
    track(this);
    try {
      this.leaderPid = await waitLeader(this.proc, deadline);
      const { state, failed } = await waitRunning(this.proc, this.leaderPid, deadline);
      this.bootState = failed.length ? `${state} (failed: ${failed.join(' ')})` : state;
      if (this.options.memoryEnforcement) await this.enableMemoryEnforcement(deadline);
    } catch (e) {
      const why = (e as Error).message;
      await this.hardStop();
      untrack(this);
      throw new BerthError(
        Date.now() > deadline ? 'TIMEOUT' : 'INTERNAL',
        `test host ${this.name}: ${why}; state in ${this.stateDir}; console.log ends with:\n${this.consoleLog(40)}`,
        { cause: e, details: { stateDir: this.stateDir } },
      );
    }
    this.bootMs = Math.round(performance.now() - start);
  }

  private requireRunning(): number {
    if (!this.running) throw new BerthError('FAILED_PRECONDITION', `test host ${this.name} is not running`);
    return this.leaderPid;
  }

  run(argv: readonly string[], opts: TestHostRunOptions = {}): Promise<ExecResult> {
    const leader = this.requireRunning();
    const args = ['nsenter', '-t', String(leader), '-a', 'systemd-run', '--pipe', '--wait', '--collect', '--quiet'];
    args.push('--service-type=exec', `--working-directory=${opts.cwd ?? repoRoot}`);
    if (opts.unit) args.push(`--unit=${opts.unit}`);
    if (opts.user) args.push(`--uid=${opts.user}`);
    for (const [k, v] of Object.entries(opts.env ?? {})) args.push(`--setenv=${k}=${v}`);
    for (const p of opts.properties ?? []) args.push(`--property=${p}`);
    if (opts.timeoutMs) args.push(`--property=RuntimeMaxSec=${Math.ceil(opts.timeoutMs / 1000)}s`);
    // systemd expands $VAR/${VAR} in ExecStart= arguments (not %-specifiers, not --setenv values).
    const [cmd, ...rest] = argv;
    if (cmd === undefined) throw new BerthError('INVALID_ARGUMENT', 'test host run: empty command');
    args.push('--', cmd, ...rest.map((a) => a.replaceAll('$', '$$$$')));
    return run(args, { input: opts.input, timeoutMs: opts.timeoutMs && opts.timeoutMs + 5000, reject: opts.reject, errorCode: opts.errorCode });
  }

  exec(argv: readonly string[], opts: TestHostRunOptions = {}): Promise<ExecResult> {
    const leader = this.requireRunning();
    const env = Object.entries({ PATH: DEFAULT_PATH, ...opts.env }).map(([k, v]) => `${k}=${v}`);
    const args = ['nsenter', '-t', String(leader), '-a', 'env', '-i', '-C', opts.cwd ?? repoRoot, ...env];
    // Killing nsenter would not kill its child inside: time out inside (exit status 124).
    if (opts.timeoutMs) args.push('timeout', '-k', '2', `${opts.timeoutMs / 1000}`);
    args.push(...argv);
    return run(args, {
      input: opts.input,
      timeoutMs: opts.timeoutMs && opts.timeoutMs + 5000,
      reject: opts.reject,
      errorCode: opts.errorCode,
    });
  }

  async enableMemoryEnforcement(deadline = Date.now() + 30_000): Promise<void> {
    if (this.memoryEnforced) return;
    await this.exec(['mount', '-o', 'remount,bind,rw', '/sys/fs/cgroup/memory']);
    await this.exec(['systemctl', 'daemon-reexec']);
    if (!this.proc) throw new BerthError('FAILED_PRECONDITION', `test host ${this.name} is not running`);
    await waitRunning(this.proc, this.leaderPid, deadline);
    this.memoryEnforced = true;
  }

  async reboot(): Promise<number> {
    const start = performance.now();
    const leader = this.requireRunning();
    const proc = this.proc as NspawnProcess;
    this.killStrays();
    process.kill(leader, SIGNAL_REBOOT);
    if (!(await waitExit(proc, this.options.timeoutMs ?? 60_000))) {
      await this.hardStop();
      throw new BerthError('TIMEOUT', `test host ${this.name} did not shut down for reboot; console.log ends with:\n${this.consoleLog(40)}`);
    }
    if (proc.exit?.code !== 133) {
      await this.cleanupAfterExit();
      throw new BerthError('INTERNAL', `test host ${this.name}: nspawn exited with ${proc.exit?.code ?? proc.exit?.signal} instead of 133 (reboot)`);
    }
    await this.cleanupAfterExit();
    await this.boot();
    return Math.round(performance.now() - start);
  }

  poweroff(opts: PoweroffOptions = {}): Promise<number> {
    this.stopping ??= this.doPoweroff(opts);
    return this.stopping;
  }

  private async doPoweroff(opts: PoweroffOptions): Promise<number> {
    const start = performance.now();
    const proc = this.proc;
    if (proc && !proc.exit) {
      this.signalPoweroff();
      if (!(await waitExit(proc, opts.timeoutMs ?? 30_000))) await this.hardStop();
    }
    await this.cleanupAfterExit();
    untrack(this);
    releaseName(this.name);
    if (!(opts.keepState ?? process.env.BERTH_TESTHOST_KEEP === '1')) rmSync(this.stateDir, { recursive: true, force: true });
    return Math.round(performance.now() - start);
  }

  /** Synchronous: asks systemd inside to power off (used at process exit too). */
  signalPoweroff(): void {
    if (!this.running || !this.leaderPid) return;
    this.killStrays();
    try {
      process.kill(this.leaderPid, SIGNAL_POWEROFF);
    } catch {
      /* already gone */
    }
  }

  /** SIGKILLs exec()-started processes still running: systemd-shutdown would wait ~10 s for them. */
  private killStrays(): void {
    for (const pid of strayPids(this.leaderPid, `/testhost.${this.name}/`)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  /**
   * Synchronous power-off for process 'exit' handlers: waits up to 10 s for the clean
   * shutdown that signalPoweroff() started, then SIGKILLs, removes cgroups and state.
   */
  finalizeSync(): void {
    const proc = this.proc;
    if (!proc || this.stopping) return;
    this.signalPoweroff();
    const deadline = Date.now() + 10_000;
    while (!proc.exit && processAlive(proc.pid) && Date.now() < deadline) sleepSync(20);
    for (let i = 0; i < 100 && cgroupPids(this.cgroupDirs).length; i++) {
      killCgroups(this.cgroupDirs);
      sleepSync(20);
    }
    removeCgroups(this.cgroupDirs);
    removePropagateDir(this.name);
    releaseName(this.name);
    if (process.env.BERTH_TESTHOST_KEEP !== '1') rmSync(this.stateDir, { recursive: true, force: true });
  }

  /** SIGKILL for everything of this test host, then cleanup. */
  private async hardStop(): Promise<void> {
    killCgroups(this.cgroupDirs);
    if (this.proc && !this.proc.exit) {
      try {
        process.kill(this.proc.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await waitExit(this.proc, 10_000);
    }
    await this.cleanupAfterExit();
  }

  /** Removes the cgroups (killing stragglers) and nspawn's propagate directory. */
  private async cleanupAfterExit(): Promise<void> {
    try {
      await destroyCgroups(this.cgroupDirs);
    } catch (e) {
      throw new BerthError('INTERNAL', `test host ${this.name}: ${(e as Error).message}`, { cause: e });
    }
    removePropagateDir(this.name);
  }
}
