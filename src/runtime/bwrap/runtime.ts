/**
 * @module runtime/bwrap/runtime
 * The bwrap Runtime: the thin I/O shell around the pure translators. A container is
 *   ~/.config/systemd/user/berth-sandbox@.service                (template, shared)
 *   ~/.config/systemd/user/berth-sandbox@NAME.service.d/50-berth.conf
 *   $STORE/sandboxes/NAME/{upper,work,rootfs,netns}              (its writable layer)
 *   $STORE/libexec/berth-sandbox-launch                          (LAUNCHER_SCRIPT)
 * and everything else is `systemctl --user` / `journalctl --user`. Layers are dir
 * snapshots in $STORE/snapshots/dir/<chainID>/fs, unpacked inside the user namespace, so
 * nothing is chowned and start time does not depend on image size.
 * Files of the container's upper dir belong to subordinate IDs the user cannot touch
 * directly; removal runs `rm` inside the same mapping.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { constants as osConstants, userInfo } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../../base/errors.ts';
import { readline } from '../../base/builtins.ts';
import { run, type ExecResult } from '../../base/exec.ts';
import type { ContainerSpec } from '../../container/spec.ts';
import { validateMachineName } from '../../container/names.ts';
import { parseUnit, serializeUnit, type UnitFile } from '../../unit/unit-file.ts';
import type {
  ContainerState, ContainerSummary, EnableResult, GcRoots, PortMapping, Runtime, RuntimeAttachOptions, RuntimeContext, RuntimeCreateOptions,
  RuntimeExecOptions, RuntimeLogsOptions,
} from '../runtime.ts';
import { isRunningState } from '../runtime.ts';
import { checkTun, probeHost, probeStoreFilesystem, type HostFacts } from './host.ts';
import { LAUNCHER_SCRIPT } from './launcher.ts';
import {
  attachedUnitName, commandOfDropIn, DROPIN_FILE, gcRootsOfDropIns, imageOfDropIn, parseShowBlocks, portsOfDropIn, stopSettingsOf, TEMPLATE_NAME,
  toAttachedRun, toMachineDropIn, toTemplateUnit, unitName,
} from './translate-unit.ts';
import type { BwrapOptions, SandboxPaths } from './types.ts';
import { exitWords, firstChild, formatRecord, liveRecord, payloadOf, procStat, RECORD_FILE, type ForegroundRecord } from './foreground.ts';
import { trace } from '../../base/trace.ts';


export interface BwrapRuntimeOptions {
  user?: { name: string; uid: number; gid: number };
  /** Default $XDG_CONFIG_HOME/systemd/user. */
  unitDir?: string;
  setuserHostPath?: string;
  /** Prefix for host reads in the probes (tests). */
  hostRoot?: string;
}


/** In sandboxes/NAME: create() skipped the NeedDaemonReload check (a foreground run needs no loaded unit). */
const UNCHECKED_FILE = 'reload-unchecked';

/** What ContainerState.unit says for a foreground run that has no unit. */
const foregroundUnit = (fg: ForegroundRecord): string => `foreground run, pid ${fg.pid} (no unit)`;

function currentUser(): { name: string; uid: number; gid: number } {
  const u = userInfo();
  return { name: u.username, uid: u.uid, gid: u.gid };
}

const SIGNALS = osConstants.signals as Record<string, number>;

/** systemd's EXIT_CODE/EXIT_STATUS words → a shell-style status (128+N for a signal). */
function exitStatusOf(code: string, status: string): number | undefined {
  if (code === 'exited') return /^\d+$/.test(status) ? Number(status) : undefined;
  const sig = SIGNALS[`SIG${status}`];
  return sig === undefined ? undefined : 128 + sig;
}

/** A child's exit as a shell-style status: its code, or 128+N for its signal (N = unknown when there is none). */
function childStatus(code: number | null, sig: NodeJS.Signals | null, unknown: number): number {
  return code ?? 128 + ((sig && SIGNALS[sig]) || unknown);
}

/** A run interrupted before the container's process existed reports the signal, not the launcher's 125. */
function reported(status: number, early: NodeJS.Signals | undefined): number {
  return early !== undefined && status !== 0 ? 128 + SIGNALS[early]! : status;
}

/** Writes atomically unless the file already holds text; true when it wrote. */
async function writeIfChanged(path: string, text: string, mode = 0o644): Promise<boolean> {
  if ((await readFile(path, 'utf8').catch(() => undefined)) === text) return false;
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
  return true;
}

export class BwrapRuntime implements Runtime {
  readonly name = 'bwrap';
  readonly storeRoot: string;
  readonly unitDir: string;
  readonly user: { name: string; uid: number; gid: number };
  private readonly opts: BwrapRuntimeOptions;
  private facts: HostFacts | undefined;
  /**
   * Containers this process created for a foreground run (create({attached})) and that
   * systemd has not been asked to load: their removal needs no systemctl call.
   */
  private readonly unitless = new Set<string>();

  constructor(ctx: RuntimeContext) {
    this.opts = (ctx.options ?? {}) as BwrapRuntimeOptions;
    this.storeRoot = ctx.storeRoot;
    this.user = this.opts.user ?? currentUser();
    const config = process.env.XDG_CONFIG_HOME || join(userInfo().homedir, '.config');
    this.unitDir = this.opts.unitDir ?? join(config, 'systemd', 'user');
  }

  paths(name: string, lowerDirs: string[] = []): SandboxPaths {
    const dir = join(this.storeRoot, 'sandboxes', validateMachineName(name));
    return {
      lowerDirs, upper: join(dir, 'upper'), work: join(dir, 'work'), merged: join(dir, 'rootfs'), netns: join(dir, 'netns'), exitFile: join(dir, 'last-exit'),
      launcher: join(this.storeRoot, 'libexec', 'berth-sandbox-launch'),
    };
  }

  private recordPath(name: string): string {
    return join(this.storeRoot, 'sandboxes', validateMachineName(name), RECORD_FILE);
  }

  /** A foreground run without a unit (another berth process's or this one's), while it lives. */
  private foreground(name: string): Promise<ForegroundRecord | undefined> {
    return liveRecord(this.recordPath(name));
  }

  private dropInPath(name: string): string {
    return join(this.unitDir, `${unitName(name)}.d`, DROPIN_FILE);
  }

  private async hostFacts(): Promise<HostFacts> {
    this.facts ??= await probeHost({ user: this.user, root: this.opts.hostRoot });
    return this.facts;
  }

  private systemctl(args: string[], timeoutMs = 60_000): Promise<ExecResult> {
    return run(['systemctl', '--user', ...args], { reject: false, timeoutMs });
  }

  private async requireKnown(name: string): Promise<string> {
    const unit = unitName(name);
    if (!existsSync(this.dropInPath(name))) throw new BerthError('NOT_FOUND', `no such container: ${name}`, { details: { name } });
    return unit;
  }

  /** The BwrapOptions for spec, from the host's facts (throws the host's refusals). */
  async options(spec: ContainerSpec, create: RuntimeCreateOptions = {}): Promise<BwrapOptions> {
    const facts = await this.hostFacts();
    const lowerDirs = spec.image.chainIds.map((c) => join(this.storeRoot, 'snapshots', 'dir', c.slice(c.indexOf(':') + 1), 'fs'));
    return {
      user: this.user, subuid: facts.subuid, subgid: facts.subgid, paths: this.paths(spec.name, lowerDirs), unitDir: this.unitDir,
      unprivilegedPortStart: facts.unprivilegedPortStart, delegatedControllers: facts.delegatedControllers, cgroupPath: facts.cgroupPath,
      publish: create.publish, setuserHostPath: this.opts.setuserHostPath,
    };
  }

  async create(spec: ContainerSpec, create: RuntimeCreateOptions = {}): Promise<void> {
    const name = validateMachineName(spec.name);
    if (existsSync(this.dropInPath(name))) throw new BerthError('ALREADY_EXISTS', `container ${name} already exists`, { details: { name } });
    const opts = await this.options(spec, create);
    trace('bwrap: host facts read');
    // Translate first: a refusal leaves nothing behind.
    const template = toTemplateUnit(opts);
    const drop = toMachineDropIn(spec, opts);
    if (drop.unit.get('X-Berth', 'Network') === 'pasta') await checkTun(this.opts.hostRoot);
    for (const [i, d] of opts.paths.lowerDirs.entries()) {
      if (!existsSync(d)) throw new BerthError('NOT_FOUND', `layer ${spec.image.chainIds[i]} of ${spec.image.ref} has no dir snapshot at ${d}; pull the image as this user`, { details: { path: d } });
    }
    await this.checkStoreFilesystem(join(this.storeRoot, 'sandboxes'));
    const p = opts.paths;
    // Another user must not read or enter a user's containers' files.
    await mkdir(join(this.storeRoot, 'sandboxes'), { recursive: true, mode: 0o700 });
    await chmod(join(this.storeRoot, 'sandboxes'), 0o700);
    try {
      // Independent files, written in parallel (each step is a thread-pool round trip).
      const templateWrite = mkdir(this.unitDir, { recursive: true }).then(() => writeIfChanged(template.path!, serializeUnit(template)));
      await Promise.all([
        ...[p.upper, p.work, p.merged].map((d) => mkdir(d, { recursive: true, mode: 0o755 })),
        mkdir(join(this.storeRoot, 'libexec'), { recursive: true }).then(() => writeIfChanged(p.launcher, LAUNCHER_SCRIPT, 0o755)),
        templateWrite,
        mkdir(drop.dir, { recursive: true }).then(() => writeIfChanged(join(drop.dir, drop.file), serializeUnit(drop.unit))),
      ]);
      const templateChanged = await templateWrite;
      // A foreground run reads the unit files itself (see toAttachedRun); systemd needs them
      // loaded only when start() or enable() hands the unit to it, and those reload then.
      // The marker keeps that owed check for a later process's start() or enable().
      if (create.attached === true && !templateChanged) {
        await writeFile(join(this.storeRoot, 'sandboxes', name, UNCHECKED_FILE), '');
        this.unitless.add(name);
      } else {
        await this.reloadIfNeeded(unitName(name), templateChanged);
      }
    } catch (e) {
      await rm(drop.dir, { recursive: true, force: true });
      await rm(join(this.storeRoot, 'sandboxes', name), { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * probeStoreFilesystem (a real overlay mount in a user namespace) once per filesystem:
   * the device it passed on is remembered in sandboxes/.overlay-ok, so a store that moves
   * to another filesystem is probed again.
   */
  private async checkStoreFilesystem(dir: string): Promise<void> {
    const marker = join(dir, '.overlay-ok');
    const dev = (await stat(dir).catch(() => undefined))?.dev;
    if (dev !== undefined && (await readFile(marker, 'utf8').catch(() => '')) === String(dev)) return;
    await probeStoreFilesystem(dir);
    await writeFile(marker, String((await stat(dir)).dev)).catch(() => {});
  }

  /**
   * A daemon-reload costs the user's manager a re-read of every unit (0.5 s on this VM, the
   * largest part of `run --rm`). A unit systemd has not loaded is read from disk when it is
   * first referenced, and one it holds in memory says NeedDaemonReload=yes when its
   * drop-ins differ from the disk; so reload only then, or when the shared template changed.
   */
  private async reloadIfNeeded(unit: string, force: boolean): Promise<void> {
    if (!force) {
      const r = await this.systemctl(['show', '-p', 'NeedDaemonReload', '--', unit]);
      if (r.exitCode === 0 && r.stdout.trim() === 'NeedDaemonReload=no') return;
    }
    await this.daemonReload();
  }

  /** The NeedDaemonReload check create({attached}) left for whoever hands the unit to systemd. */
  private async owedReloadCheck(name: string): Promise<void> {
    this.unitless.delete(name);
    const marker = join(this.storeRoot, 'sandboxes', validateMachineName(name), UNCHECKED_FILE);
    if (!existsSync(marker)) return;
    await this.reloadIfNeeded(unitName(name), false);
    await rm(marker, { force: true });
  }

  private async daemonReload(): Promise<void> {
    const r = await this.systemctl(['daemon-reload']);
    if (r.exitCode !== 0) throw new BerthError('FAILED_PRECONDITION', `systemctl --user daemon-reload failed: ${r.stderr.trim()} (is the user's systemd running? loginctl enable-linger ${this.user.name})`);
  }

  async start(name: string): Promise<void> {
    const unit = await this.requireKnown(name);
    const st = await this.state(name);
    if (st.status === 'running' && st.unit !== unit) throw new BerthError('FAILED_PRECONDITION', `container ${name} is running in the foreground (${st.unit})`, { details: { name } });
    if (st.status === 'running') return;
    await this.owedReloadCheck(name);
    await this.systemctl(['reset-failed', '--', unit]);
    await rm(this.paths(name).exitFile, { force: true });
    const r = await this.systemctl(['start', '--', unit]);
    if (r.exitCode !== 0) {
      const tail = await run(['journalctl', '--user', '-u', unit, '-n', '10', '--no-pager', '-o', 'cat'], { reject: false });
      throw new BerthError('FAILED_PRECONDITION', `starting ${name} failed: ${r.stderr.trim().split('\n')[0] ?? ''}\n${tail.stdout.trim()}`, { details: { unit } });
    }
  }

  async stop(name: string, opts: { timeoutSec?: number } = {}): Promise<void> {
    await this.requireKnown(name);
    const fg = await this.foreground(name);
    if (fg) return this.stopForeground(name, fg, opts.timeoutSec);
    // The unit that runs it: its own, or the transient one of a foreground run.
    const unit = (await this.state(name)).unit;
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutSec !== undefined) {
      timer = setTimeout(() => void this.systemctl(['kill', '--signal=SIGKILL', '--', unit]), opts.timeoutSec * 1000);
    }
    const r = await this.systemctl(['stop', '--', unit], 600_000).finally(() => clearTimeout(timer));
    if (r.exitCode !== 0) throw new BerthError('FAILED_PRECONDITION', `stopping ${name} failed: ${r.stderr.trim()}`);
  }

  async kill(name: string, signal = 'SIGKILL'): Promise<void> {
    await this.requireKnown(name);
    if (!/^SIG[A-Z0-9+-]{2,10}$/.test(signal)) throw new BerthError('INVALID_ARGUMENT', `"${signal}" is not a signal name`);
    const fg = await this.foreground(name);
    if (fg) {
      if (SIGNALS[signal] === undefined) throw new BerthError('INVALID_ARGUMENT', `"${signal}" is not a signal name`);
      await this.signalForeground(fg, signal as NodeJS.Signals);
      return;
    }
    const st = await this.state(name);
    if (st.status !== 'running') throw new BerthError('FAILED_PRECONDITION', `container ${name} is not running`);
    const r = await this.systemctl(['kill', `--signal=${signal}`, '--', st.unit]);
    if (r.exitCode !== 0) throw new BerthError('FAILED_PRECONDITION', `kill ${name}: ${r.stderr.trim()}`);
  }

  /**
   * A signal for a foreground run's payload (what `systemctl kill` of its unit would reach
   * first). SIGKILL, or a payload that is not there yet or cannot be signalled, takes the
   * whole sandbox down instead: bwrap dies, and --die-with-parent ends its PID namespace.
   */
  private async signalForeground(fg: ForegroundRecord, sig: NodeJS.Signals): Promise<void> {
    const payload = sig === 'SIGKILL' ? 0 : await payloadOf(fg.pid);
    try {
      if (payload > 0) {
        process.kill(payload, sig);
        return;
      }
    } catch {
      // fall through
    }
    try {
      if ((await procStat(fg.pid))?.startTime === fg.startTime) process.kill(fg.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  /** Stop signal to the payload (or SIGKILL with kill), SIGKILL after the timeout; resolves once the sandbox is gone. */
  private async stopForeground(name: string, fg: ForegroundRecord, timeoutSec?: number, kill = false): Promise<void> {
    const unitStop = stopSettingsOf(await this.readDropIn(name));
    const sig = kill ? 'SIGKILL' : unitStop.killSignal;
    const stopSec = timeoutSec ?? unitStop.stopTimeoutSec;
    await this.signalForeground(fg, (SIGNALS[sig] !== undefined ? sig : 'SIGTERM') as NodeJS.Signals);
    const gone = async () => (await liveRecord(this.recordPath(name)))?.pid !== fg.pid;
    const until = Date.now() + stopSec * 1000;
    let killedAt = -1;
    for (let i = 0; !(await gone()); i++) {
      if (killedAt < 0 && Date.now() >= until) {
        await this.signalForeground(fg, 'SIGKILL');
        killedAt = i;
      }
      if (killedAt >= 0 && i - killedAt > 400) throw new BerthError('FAILED_PRECONDITION', `container ${name} (pid ${fg.pid}) did not end after SIGKILL`);
      await new Promise((r) => setTimeout(r, 25));
    }
    // The berth that runs it records the exit and then drops the record: wait for that
    // (briefly: a berth that was itself killed leaves a record of a dead process behind).
    for (let i = 0; i < 40 && existsSync(this.recordPath(name)); i++) await new Promise((r) => setTimeout(r, 25));
  }

  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    const unit = unitName(name);
    const known = existsSync(this.dropInPath(name));
    if (!known && !opts.force) throw new BerthError('NOT_FOUND', `no such container: ${name}`, { details: { name } });
    const fg = known ? await this.foreground(name) : undefined;
    if (fg) {
      if (!opts.force) throw new BerthError('FAILED_PRECONDITION', `container ${name} is running; stop it first or use --force`);
      await this.stopForeground(name, fg, 0, true);
    }
    if (known && this.unitless.has(name)) {
      // Created by this process for a foreground run and never handed to systemd: no unit
      // state to clear (no show, disable or reset-failed).
      this.unitless.delete(name);
      await this.removeFiles(name);
      return;
    }
    // One show for both units; only the systemctl calls the state calls for (run --rm pays for each).
    const props = await this.show([unit, attachedUnitName(name)]);
    const st = known ? await this.stateFrom(name, props) : undefined;
    if (st?.status === 'running') {
      if (!opts.force) throw new BerthError('FAILED_PRECONDITION', `container ${name} is running; stop it first or use --force`);
      await this.systemctl(['kill', '--signal=SIGKILL', '--', st.unit]);
      await this.systemctl(['stop', '--', st.unit]);
    }
    const main = props.get(unit);
    if (!known || (main?.UnitFileState ?? '') !== 'disabled') await this.systemctl(['disable', '--', unit]);
    if (!known || st?.status === 'running' || main?.ActiveState === 'failed' || props.get(attachedUnitName(name))?.ActiveState === 'failed') {
      await this.systemctl(['reset-failed', '--', unit, attachedUnitName(name)]);
    }
    await this.removeFiles(name);
    // No daemon-reload: the unit is stopped, not failed and not enabled, so systemd drops
    // it from memory on its own, and a later create() of the name reloads if it did not.
  }

  /**
   * The sandbox directory, then the drop-in. Nothing of the container runs any more, so the
   * tree cannot change underneath: first as the user (fs.rm never follows a symlink; what a
   * container's root wrote belongs to the user), and only when that is refused (files of
   * subordinate IDs) `rm -rf` inside the same mapping, which costs unshare, newuidmap and
   * newgidmap. Overlay leaves its work dir mode 000 and owned by the user: opened first.
   */
  private async removeFiles(name: string): Promise<void> {
    const dir = join(this.storeRoot, 'sandboxes', validateMachineName(name));
    if (existsSync(dir)) {
      await chmod(join(dir, 'work', 'work'), 0o700).catch(() => {});
      const plain = await rm(dir, { recursive: true, force: true, maxRetries: 0 }).then(() => true, () => false);
      if (!plain) {
        const f = await this.hostFacts();
        await run(['unshare', '--user', '--map-user=0', '--map-group=0', `--map-users=${f.subuid.start},1,${f.subuid.count}`,
          `--map-groups=${f.subgid.start},1,${f.subgid.count}`, '--', 'rm', '-rf', '--one-file-system', '--', dir], { timeoutMs: 120_000 });
      }
    }
    await rm(join(this.unitDir, `${unitName(name)}.d`), { recursive: true, force: true });
  }

  /**
   * One `systemctl --user show` for the given units: Id → properties. A container's state
   * comes from its unit or, while it runs in the foreground, from its transient
   * berth-run-NAME.service.
   */
  private async show(units: string[]): Promise<Map<string, Record<string, string>>> {
    if (units.length === 0) return new Map();
    const r = await this.systemctl(['show', '--timestamp=unix', '-p', 'Id,ActiveState,SubState,MainPID,UnitFileState,StateChangeTimestamp', '--', ...units]);
    if (r.exitCode !== 0) throw new BerthError('FAILED_PRECONDITION', `systemctl --user show failed: ${r.stderr.trim()} (is the user's systemd running? loginctl enable-linger ${this.user.name})`);
    return parseShowBlocks(r.stdout);
  }

  /** State from the two units' properties and the exit file. */
  private async stateFrom(name: string, props: Map<string, Record<string, string>>): Promise<ContainerState & { props: Record<string, string> }> {
    const unit = unitName(name);
    const attached = props.get(attachedUnitName(name));
    const main = props.get(unit) ?? {};
    const fg = await this.foreground(name);
    if (fg) return { name, runtime: this.name, unit: foregroundUnit(fg), status: 'running', pid: fg.pid, props: { ActiveState: 'active', SubState: 'running' } };
    if (attached && isRunningState(attached.ActiveState)) {
      const pid = Number(attached.MainPID ?? 0);
      return { name, runtime: this.name, unit: attachedUnitName(name), status: 'running', ...(pid > 0 ? { pid } : {}), props: attached };
    }
    const active = main.ActiveState ?? 'unknown';
    const pid = Number(main.MainPID ?? 0);
    if (isRunningState(active)) return { name, runtime: this.name, unit, status: 'running', ...(pid > 0 ? { pid } : {}), props: main };
    // "$SERVICE_RESULT $EXIT_CODE $EXIT_STATUS" from ExecStopPost= (e.g. "success exited 0", "signal killed TERM").
    const last = (await readFile(this.paths(name).exitFile, 'utf8').catch(() => '')).trim().split(' ');
    if (last.length < 3) return { name, runtime: this.name, unit, status: active === 'failed' ? 'failed' : 'created', props: main };
    const [result, code, st] = last as [string, string, string];
    const exitCode = exitStatusOf(code, st);
    return {
      name, runtime: this.name, unit, status: active === 'failed' || (result !== 'success' && code !== 'exited') ? 'failed' : 'exited',
      ...(exitCode !== undefined ? { exitCode } : {}), props: main,
    };
  }

  async state(name: string): Promise<ContainerState> {
    await this.requireKnown(name);
    const { props: _p, ...st } = await this.stateFrom(name, await this.show([unitName(name), attachedUnitName(name)]));
    return st;
  }

  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const d of await readdir(this.unitDir).catch(() => [] as string[])) {
      const m = /^berth-sandbox@(.+)\.service\.d$/.exec(d);
      if (m && existsSync(join(this.unitDir, d, DROPIN_FILE))) out.push(m[1]!);
    }
    return out.sort();
  }

  private async readDropIn(name: string): Promise<UnitFile | undefined> {
    const text = await readFile(this.dropInPath(name), 'utf8').catch(() => undefined);
    try {
      return text === undefined ? undefined : parseUnit(text);
    } catch {
      return undefined;
    }
  }

  async gcRoots(): Promise<GcRoots> {
    return gcRootsOfDropIns(await Promise.all((await this.list()).map((n) => this.readDropIn(n))));
  }

  /**
   * Enters the sandbox's namespaces through the user namespace (the user owns it) with
   * nsenter, rooted in the container. The environment is the one the container's command
   * started with, plus opts.env.
   */
  async exec(name: string, argv: string[], opts: RuntimeExecOptions = {}): Promise<number> {
    if (argv.length === 0) throw new BerthError('INVALID_ARGUMENT', 'exec: no command given');
    const st = await this.state(name);
    if (st.status !== 'running' || !st.pid) throw new BerthError('FAILED_PRECONDITION', `container ${name} is not running`);
    const init = await firstChild(st.pid);
    const payload = init ? await firstChild(init) : 0;
    if (!init || !payload) throw new BerthError('FAILED_PRECONDITION', `container ${name} is still starting`);
    const env: Record<string, string> = {};
    for (const kv of (await readFile(`/proc/${payload}/environ`, 'utf8').catch(() => '')).split('\0')) {
      const i = kv.indexOf('=');
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    for (const kv of opts.env ?? []) {
      const i = kv.indexOf('=');
      if (i <= 0) throw new BerthError('INVALID_ARGUMENT', `exec: "${kv}" is not KEY=VALUE`);
      env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    const cwd = opts.cwd ?? '/';
    if (!cwd.startsWith('/')) throw new BerthError('INVALID_ARGUMENT', `exec: working directory "${cwd}" must be absolute`);
    const user = opts.user && !['root', '0', '0:0'].includes(opts.user) ? ['/run/host/berth/setuser', opts.user, '--'] : [];
    const args = ['-t', String(init), '--user', '--mount', '--net', '--pid', '--ipc', '--uts', '--cgroup', '--root', `--wd=${cwd}`, '--', ...user, ...argv];
    return new Promise((resolve, reject) => {
      // no_new_privs before entering, like the container's own processes (setns is unaffected by it).
      const c = spawn('setpriv', ['--no-new-privs', 'nsenter', ...args], { env, stdio: opts.stdin || opts.tty ? 'inherit' : ['ignore', 'inherit', 'inherit'] });
      c.on('error', (e) => reject(new BerthError('FAILED_PRECONDITION', `setpriv/nsenter: ${e.message}`, { cause: e })));
      c.on('close', (code, sig) => resolve(childStatus(code, sig, 0)));
    });
  }

  /** One readdir, one `systemctl --user show` for every unit, one read of each drop-in and exit file. */
  async summaries(): Promise<ContainerSummary[]> {
    const names = await this.list();
    const props = await this.show(names.flatMap((n) => [unitName(n), attachedUnitName(n)]));
    const out: ContainerSummary[] = [];
    for (const n of names) out.push(await this.summaryFrom(n, props));
    return out;
  }

  /** summaries()' row of one container, from its two units only (status and inspect need no more). */
  async summary(name: string): Promise<ContainerSummary> {
    await this.requireKnown(name);
    return this.summaryFrom(name, await this.show([unitName(name), attachedUnitName(name)]));
  }

  private async summaryFrom(n: string, props: Map<string, Record<string, string>>): Promise<ContainerSummary> {
    const { props: p, ...st } = await this.stateFrom(n, props);
    const u = await this.readDropIn(n);
    const ts = Number(/^@(\d+)$/.exec(p.StateChangeTimestamp ?? '')?.[1] ?? NaN);
    const enabled = props.get(unitName(n))?.UnitFileState;
    return {
      ...st, image: u ? imageOfDropIn(u) : undefined, command: u ? commandOfDropIn(u) : [],
      activeState: p.ActiveState ?? 'unknown', subState: p.SubState ?? '',
      ...(enabled ? { enabled } : {}), ...(Number.isFinite(ts) ? { since: new Date(ts * 1000).toISOString() } : {}),
    };
  }

  /**
   * Foreground run (see toAttachedRun for why a transient service): `systemd-run --user
   * --wait` of the unit's own command. Without a terminal, systemd-run gets a process group
   * of its own, so a Ctrl-C reaches berth only, and berth forwards SIGINT/SIGTERM/SIGHUP to
   * the container's first process (bwrap would not pass them on; a second SIGINT kills the
   * whole run). With a terminal, Ctrl-C is a byte in the pty and reaches the payload there.
   * The exit status is systemd's record (ExecStopPost=), so a signal gives 128+N.
   */
  async runAttached(name: string, opts: RuntimeAttachOptions = {}): Promise<number> {
    await this.requireKnown(name);
    // A container this process has just created for the run has nothing running yet, and
    // systemd has not seen it: no need to ask.
    const fresh = this.unitless.has(name);
    const props = fresh ? new Map<string, Record<string, string>>() : await this.show([unitName(name), attachedUnitName(name)]);
    if (fresh ? (await this.foreground(name)) !== undefined : (await this.stateFrom(name, props)).status === 'running') {
      throw new BerthError('FAILED_PRECONDITION', `container ${name} is already running`, { details: { name } });
    }
    const template = await readFile(join(this.unitDir, TEMPLATE_NAME), 'utf8').then((t) => parseUnit(t), () => undefined);
    const drop = await this.readDropIn(name);
    if (!template || !drop) throw new BerthError('FAILED_PRECONDITION', `container ${name}: its unit files cannot be read; remove and create it again`, { details: { name } });
    const tty = opts.tty === true;
    if (tty && !process.stdin.isTTY) throw new BerthError('INVALID_ARGUMENT', 'a terminal (-t) was asked for, but stdin is not a terminal');
    const run = toAttachedRun(template, drop, { name, tty, stdin: opts.stdin === true });
    trace(`foreground: ${run.mode === 'child' ? 'as a child, no unit' : `transient unit for ${run.why.join(', ')}`}`);
    if (run.mode === 'child') return this.runChild(name, run, opts.stdin === true);
    // systemd loads the transient unit; remove() then clears what it may leave.
    this.unitless.delete(name);
    if (props.get(run.unit)?.ActiveState === 'failed') await this.systemctl(['reset-failed', '--', run.unit]);
    await rm(this.paths(name).exitFile, { force: true });
    const child = spawn(run.argv[0]!, run.argv.slice(1), {
      stdio: tty || opts.stdin ? 'inherit' : ['ignore', 'inherit', 'inherit'],
      detached: !tty,
    });
    let interrupts = 0;
    let early: NodeJS.Signals | undefined;
    const forward = (sig: NodeJS.Signals) => () => {
      if (sig === 'SIGINT' && ++interrupts > 1) {
        void this.systemctl(['kill', '--signal=SIGKILL', '--', run.unit]);
        return;
      }
      void (async () => {
        const main = Number((await this.show([run.unit])).get(run.unit)?.MainPID ?? 0);
        const payload = main > 0 ? await payloadOf(main) : 0;
        if (payload === 0) {
          // Still starting (launcher, pasta): there is nobody to deliver it to; stop the run.
          early ??= sig;
          await this.systemctl(['stop', '--', run.unit]);
          return;
        }
        try {
          process.kill(payload, sig);
        } catch {
          // A payload running as a subordinate ID: the user's manager signals it.
          await this.systemctl(['kill', `--signal=${sig}`, '--', run.unit]);
        }
      })();
    };
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    try {
      let killed = false;
      const rc = await new Promise<number>((resolve, reject) => {
        child.on('error', (e) => reject(new BerthError('FAILED_PRECONDITION', `systemd-run: ${e.message}`, { cause: e })));
        child.on('close', (code, sig) => {
          killed = code === null;
          resolve(childStatus(code, sig, 0));
        });
      });
      // --wait returns once the service is gone; if systemd-run itself was killed, stop it
      // (and whatever is left in its cgroup) here.
      if (killed) await this.systemctl(['stop', '--', run.unit]);
      const last = (await readFile(this.paths(name).exitFile, 'utf8').catch(() => '')).trim().split(' ');
      const status = (last.length >= 3 ? exitStatusOf(last[1]!, last[2]!) : undefined) ?? rc;
      return reported(status, early);
    } finally {
      for (const [s, h] of handlers) process.off(s, h);
    }
  }

  /**
   * A foreground run as berth's child (AttachedRun mode 'child'): in its own session and
   * process group, so a Ctrl-C reaches berth only, which forwards SIGINT/SIGTERM/SIGHUP to
   * the payload (a second SIGINT, or a signal before the payload exists, kills the sandbox).
   * The record file tells other berth processes it runs; the exit is recorded in the words
   * ExecStopPost= would have used, so state() reads both kinds of run alike.
   */
  private async runChild(name: string, run: ReturnType<typeof toAttachedRun>, stdin: boolean): Promise<number> {
    const paths = this.paths(name);
    const record = this.recordPath(name);
    await rm(paths.exitFile, { force: true });
    const child = spawn(run.argv[0]!, run.argv.slice(1), { stdio: stdin ? 'inherit' : ['ignore', 'inherit', 'inherit'], detached: true, env: run.env });
    trace('bwrap: sandbox spawned');
    const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((resolve, reject) => {
      child.on('error', (e) => reject(new BerthError('FAILED_PRECONDITION', `${run.argv[0]}: ${e.message}`, { cause: e })));
      child.on('exit', (code, sig) => resolve({ code, sig }));
    });
    // A spawn error may come while the record is written; it is awaited below, not unhandled.
    exited.catch(() => {});
    let fg: ForegroundRecord | undefined;
    let interrupts = 0;
    let early: NodeJS.Signals | undefined;
    const forward = (sig: NodeJS.Signals) => () => {
      void (async () => {
        if (!fg) {
          early ??= sig;
          return;
        }
        if (sig === 'SIGINT' && ++interrupts > 1) return this.signalForeground(fg, 'SIGKILL');
        if ((await payloadOf(fg.pid)) === 0) early ??= sig;
        await this.signalForeground(fg, sig);
      })();
    };
    const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    try {
      const st = child.pid ? await procStat(child.pid) : undefined;
      if (child.pid && st) {
        fg = { pid: child.pid, startTime: st.startTime };
        await writeFile(record, formatRecord(fg), { mode: 0o600 });
        if (early) await this.signalForeground(fg, 'SIGKILL');
      }
      trace('bwrap: foreground recorded');
      const { code, sig } = await exited;
      trace('bwrap: sandbox exited');
      await writeFile(paths.exitFile, `${exitWords(code, sig)}\n`).catch(() => {});
      return reported(childStatus(code, sig, 9), early);
    } finally {
      for (const [s, h] of handlers) process.off(s, h);
      await rm(record, { force: true });
    }
  }

  /** Wanted by the user manager's default.target; warns when that manager does not run without a login. */
  async enable(name: string): Promise<EnableResult> {
    const unit = await this.requireKnown(name);
    await this.owedReloadCheck(name);
    const r = await this.systemctl(['enable', '--', unit]);
    if (r.exitCode !== 0) throw new BerthError('FAILED_PRECONDITION', `enable ${name}: ${r.stderr.trim()}`);
    const warnings: string[] = [];
    if (!(await this.lingering())) {
      warnings.push(`lingering is off for ${this.user.name}: ${name} starts when ${this.user.name} logs in, not at boot, and stops at the last logout; to start it at boot: loginctl enable-linger ${this.user.name}`);
    }
    return { warnings };
  }

  /** Whether logind keeps the user's manager running without a session (/var/lib/systemd/linger/USER). */
  async lingering(): Promise<boolean> {
    return existsSync(join(this.opts.hostRoot ?? '/', 'var/lib/systemd/linger', this.user.name));
  }

  async disable(name: string): Promise<void> {
    const unit = await this.requireKnown(name);
    const r = await this.systemctl(['disable', '--', unit]);
    if (r.exitCode !== 0) throw new BerthError('FAILED_PRECONDITION', `disable ${name}: ${r.stderr.trim()}`);
  }

  async ports(name: string): Promise<PortMapping[]> {
    await this.requireKnown(name);
    const u = await this.readDropIn(name);
    return u ? portsOfDropIn(u) : [];
  }

  async *logs(name: string, opts: RuntimeLogsOptions = {}): AsyncIterable<string> {
    const unit = await this.requireKnown(name);
    const args = ['--user', '-u', unit, '-o', 'cat', '--no-pager', ...(opts.lines !== undefined ? ['-n', String(opts.lines)] : []), ...(opts.follow ? ['-f'] : []),
      ...(opts.since !== undefined ? ['--since', opts.since] : [])];
    const c = spawn('journalctl', args, { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      for await (const line of readline().createInterface({ input: c.stdout })) yield line;
    } finally {
      c.kill();
    }
  }
}

export const createBwrapRuntime = (ctx: RuntimeContext): Runtime => new BwrapRuntime(ctx);

/** Template unit name, for tools that list the user's containers (`systemctl --user list-units 'berth-sandbox@*'`). */
export { TEMPLATE_NAME };
