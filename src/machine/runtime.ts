/**
 * @module machine/runtime
 * The root backend behind the Runtime seam: `nspawn`, a systemd-nspawn@NAME.service per
 * container, built from the machine functions of this module (create, lifecycle, query,
 * access) and runtime/nspawn. Nothing here is new behaviour: each verb is the machine
 * function the CLI called before, so the figures (ps = one readdir + one
 * ListUnitsByPatterns + one ListMachines, start/stop over D-Bus without reloads, the
 * attached run without systemd as PID 1) stay what they were.
 *
 * Only the listing code is imported up front (`ps` loads this module and runs often);
 * every other verb imports its implementation when it is called.
 *
 * Besides the Runtime verbs it offers what only nspawn has ({@link NspawnExtras}): rename,
 * machinectl-backed status, inspect with unit and machine properties, shell.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { BerthError } from '../base/errors.ts';
import { readline } from '../base/builtins.ts';
import type { Digest } from '../base/digest.ts';
import type { ContainerSpec } from '../container/spec.ts';
import type {
  ContainerState, ContainerStatus, ContainerSummary, EnableResult, GcRoots, PortMapping, Runtime, RuntimeAttachOptions, RuntimeContext,
  RuntimeCreateOptions, RuntimeExecOptions, RuntimeLogsOptions,
} from '../runtime/runtime.ts';
import { isRunningState } from '../runtime/runtime.ts';
import { imagesInUse, listMachineNames, listMachineSummaries, type MachineSummary } from './query.ts';
import type { CreatedMachine, MachineContext } from './create.ts';

/** A `ps` row of the nspawn runtime: the neutral summary plus what machined and the .nspawn file add. */
export type NspawnSummary = ContainerSummary & Omit<MachineSummary, 'since' | 'enabled'>;

/** Verbs only this backend has; the manager offers them where a runtime implements them. */
export interface NspawnExtras {
  rename(from: string, to: string): Promise<void>;
  /** machinectl-backed status: unit, registration, addresses, resources, journal tail. */
  detailedStatus(name: string, opts?: { lines?: number }): Promise<{ data: unknown; text: string }>;
  inspect(name: string): Promise<Record<string, unknown>>;
}

function statusOf(activeState: string | undefined, hasFiles: boolean): ContainerStatus {
  if (activeState === 'failed') return 'failed';
  if (isRunningState(activeState)) return 'running';
  return hasFiles ? 'created' : 'exited';
}

export class NspawnRuntime implements Runtime, NspawnExtras {
  readonly name = 'nspawn';
  readonly storeRoot: string;
  /** What create() prepared in this process, for an attached run right after it. */
  private readonly created = new Map<string, { spec: ContainerSpec; machine: CreatedMachine }>();

  constructor(ctx: RuntimeContext) {
    this.storeRoot = ctx.storeRoot;
  }

  private async ctx(): Promise<MachineContext> {
    const { SnapshotStore } = await import('../snapshot/store.ts');
    return { berthRoot: this.storeRoot, snapshots: new SnapshotStore(`${this.storeRoot}/snapshots`) };
  }

  private async requireExists(name: string): Promise<void> {
    const { machinePaths } = await import('../runtime/nspawn/paths.ts');
    machinePaths(name); // validates the name
    const { machineExists } = await import('./create.ts');
    if (!(await machineExists(name))) throw new BerthError('NOT_FOUND', `no such container: ${name}`, { details: { name } });
  }

  /** run -d refuses before anything is created when PID 1 is not systemd. */
  checkDetach(): void {
    if (!existsSync('/run/systemd/system')) {
      throw new BerthError('FAILED_PRECONDITION', 'berth run -d needs systemd as PID 1, and PID 1 on this host is not systemd (run it in the foreground, without -d)');
    }
  }

  async exists(name: string): Promise<boolean> {
    const { machineExists } = await import('./create.ts');
    return machineExists(name);
  }

  async create(spec: ContainerSpec, opts: RuntimeCreateOptions = {}): Promise<void> {
    const { createMachine } = await import('./create.ts');
    const { systemdIsPid1 } = await import('../runtime/nspawn/systemd.ts');
    // An attached run without systemd mounts the rootfs in nspawn's own mount namespace.
    const mountInForeground = opts.attached === true && !systemdIsPid1();
    // run -d: the unit's start (nspawn-start --mount) mounts the rootfs a moment later anyway.
    const mountAtStart = opts.startSoon === true && opts.attached !== true && systemdIsPid1();
    if (mountAtStart) {
      // The unit starts ~20 ms from now: its first cgroup move then finds the kernel's lock warm.
      const { warmCgroupAttach } = await import('../runtime/nspawn/attach-warm.ts');
      warmCgroupAttach();
    }
    const machine = await createMachine(await this.ctx(), spec, { keepMounted: opts.startSoon === true, mountInForeground, mountAtStart });
    this.created.set(spec.name, { spec, machine });
  }

  async start(name: string): Promise<void> {
    const { startMachine } = await import('./lifecycle.ts');
    await startMachine(name, { fresh: this.created.has(name) });
  }

  async stop(name: string, opts: { timeoutSec?: number } = {}): Promise<void> {
    const { stopMachine } = await import('./lifecycle.ts');
    await stopMachine(name, opts);
  }

  async kill(name: string, signal = 'SIGKILL'): Promise<void> {
    const { killMachine } = await import('./lifecycle.ts');
    await killMachine(name, /^\d+$/.test(signal) || signal.startsWith('SIG') ? signal : `SIG${signal}`);
  }

  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const { removeMachine } = await import('./lifecycle.ts');
    await removeMachine(await this.ctx(), name, opts);
    this.created.delete(name);
  }

  async state(name: string): Promise<ContainerState> {
    await this.requireExists(name);
    const { machinePaths, systemdIsPid1, unitState, machineInfo } = await import('../runtime/nspawn/index.ts');
    const p = machinePaths(name);
    const files = existsSync(p.nspawnFile);
    if (!systemdIsPid1()) return { name, runtime: this.name, status: files ? 'created' : 'exited', unit: p.unit };
    const [u, m] = await Promise.all([unitState(p.unit), machineInfo(name)]);
    const st: ContainerState = { name, runtime: this.name, status: statusOf(u.activeState, files), unit: p.unit };
    if (m?.leader) st.pid = m.leader;
    return st;
  }

  list(): Promise<string[]> {
    return listMachineNames();
  }

  async exec(name: string, argv: string[], opts: RuntimeExecOptions = {}): Promise<number> {
    const { execInMachine } = await import('./access.ts');
    return execInMachine(name, argv, opts);
  }

  async *logs(name: string, opts: RuntimeLogsOptions = {}): AsyncIterable<string> {
    await this.requireExists(name);
    const { machinePaths } = await import('../runtime/nspawn/paths.ts');
    const args = ['-u', machinePaths(name).unit, '_TRANSPORT=stdout', '-o', 'cat', '--no-pager', '-q'];
    if (opts.follow) args.push('-f');
    if (opts.lines !== undefined) args.push('-n', String(opts.lines));
    else if (!opts.follow) args.push('-n', 'all');
    if (opts.since) args.push('--since', opts.since);
    const child = spawn('journalctl', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const failed = new Promise<never>((_, reject) => child.on('error', (e) => reject(new BerthError('FAILED_PRECONDITION', `journalctl: ${e.message}`, { cause: e }))));
    failed.catch(() => {});
    try {
      for await (const line of readline().createInterface({ input: child.stdout })) yield line;
      const code = child.exitCode ?? (await new Promise<number | null>((r) => child.once('close', (c) => r(c))));
      if (code !== 0 && code !== null) throw new BerthError('FAILED_PRECONDITION', `journalctl exited with ${code}`);
    } finally {
      if (child.exitCode === null) child.kill();
    }
  }

  async gcRoots(): Promise<GcRoots> {
    const uses = await imagesInUse();
    return { manifests: uses.map((u) => u.digest as Digest), chainIds: uses.flatMap((u) => u.chainIds as Digest[]) };
  }

  /** Which machines use which image (rmi names them); nspawn's .nspawn files record it. */
  async imageUsers(): Promise<Array<{ container: string; digest: string }>> {
    return (await imagesInUse()).map((u) => ({ container: u.machine, digest: u.digest }));
  }

  async summaries(opts: { detail?: boolean } = {}): Promise<NspawnSummary[]> {
    const rows = await listMachineSummaries({ detail: opts.detail });
    return rows.map((m) => {
      const row: NspawnSummary = {
        ...m, runtime: this.name, status: m.running ? 'running' : m.state === 'failed' ? 'failed' : 'created', activeState: m.state,
        ...(m.mainPid !== undefined ? { pid: m.mainPid } : {}),
      };
      return row;
    });
  }

  async runAttached(name: string, _opts: RuntimeAttachOptions = {}): Promise<number> {
    const c = this.created.get(name);
    if (!c) {
      await this.requireExists(name);
      throw new BerthError('UNSUPPORTED', `an attached run of ${name} is possible only right after it is created (berth run without -d); start it in the background with \`berth start ${name}\``);
    }
    const { spec, machine } = c;
    const { readAttachment, ensureZoneRunning, runtimeNetwork } = await import('../network/index.ts');
    const { runForeground, systemdIsPid1 } = await import('../runtime/nspawn/index.ts');
    const properties: string[] = [];
    if (spec.resources.memoryMax !== undefined) properties.push(`MemoryMax=${spec.resources.memoryMax}`);
    if (spec.resources.cpuQuotaPercent !== undefined) properties.push(`CPUQuota=${spec.resources.cpuQuotaPercent}%`);
    if (spec.resources.tasksMax !== undefined) properties.push(`TasksMax=${spec.resources.tasksMax}`);
    const att = await readAttachment(spec.name);
    if (att) await ensureZoneRunning(att.zone);
    return runForeground({
      name: spec.name, plan: machine.plan, volumes: machine.volumes, tty: spec.process.tty, stdin: spec.process.stdin, properties,
      slice: systemdIsPid1() ? spec.slice : undefined, network: att ? runtimeNetwork(att) : undefined, start: machine.start,
      ...(machine.dirs ? { dirs: machine.dirs } : {}),
    });
  }

  async enable(name: string): Promise<EnableResult> {
    const { enableMachine } = await import('./lifecycle.ts');
    await enableMachine(name);
    return { warnings: [] };
  }

  async disable(name: string): Promise<void> {
    const { disableMachine } = await import('./lifecycle.ts');
    await disableMachine(name);
  }

  async ports(name: string): Promise<PortMapping[]> {
    const { machinePaths } = await import('../runtime/nspawn/paths.ts');
    if (!existsSync(machinePaths(name).nspawnFile)) throw new BerthError('NOT_FOUND', `no such container: ${name}`, { details: { name } });
    const { readAttachment } = await import('../network/index.ts');
    const a = await readAttachment(name);
    return (a?.ports ?? []).map((p) => ({ ...(p.hostIp ? { hostIp: p.hostIp } : {}), hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.proto }));
  }

  async rename(from: string, to: string): Promise<void> {
    const { renameMachine } = await import('./lifecycle.ts');
    await renameMachine(await this.ctx(), from, to);
  }

  async detailedStatus(name: string, opts: { lines?: number } = {}): Promise<{ data: unknown; text: string }> {
    await this.requireExists(name);
    const { machineStatus, formatStatus } = await import('./status.ts');
    const s = await machineStatus(name, opts);
    return { data: s, text: formatStatus(s) };
  }

  async inspect(name: string): Promise<Record<string, unknown>> {
    const { machinePaths } = await import('../runtime/nspawn/paths.ts');
    machinePaths(name);
    const { inspectMachine } = await import('./query.ts');
    return inspectMachine(name);
  }
}

export const createNspawnRuntime = (ctx: RuntimeContext): Runtime => new NspawnRuntime(ctx);
