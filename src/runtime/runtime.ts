/**
 * @module runtime/runtime
 * The seam between berth's application layer and the programs that actually run a
 * container. berth has two backends behind it: `nspawn` (root: systemd-nspawn@NAME.service)
 * and `bwrap` (any user: a systemd *user* unit around bubblewrap). The manager picks one by
 * name from a {@link RuntimeRegistry}; it never asks `if (backend === ...)`.
 *
 * Glossary
 * - **spec**: the neutral {@link ContainerSpec} (image config + the user's flags). A runtime
 *   translates it into its own words (a .nspawn file, a bwrap argv) with a pure translator.
 * - **name**: the container's name, unique per runtime *and owner*: root's `web` and
 *   user tuser's `web` are different containers with different units.
 * - **unit**: the systemd unit that supervises the container; berth keeps no state that
 *   systemd does not already hold, so `state()` asks systemd, not a file of berth's.
 * - **created**: the unit files and the root filesystem's upper dir exist, nothing runs.
 * - **running**: the unit is active and the container's first process lives.
 * - **exited**: it ran and stopped (exit code known when systemd recorded one).
 * - **GC roots**: the manifests and layer snapshots (chain IDs) a runtime's containers use,
 *   so `image prune` keeps them even when no image name points at them any more.
 *
 * Lifecycle (what `berth run -d --name web busybox httpd -f` does through this interface):
 *
 *     const rt = registry.get('bwrap')(ctx);      // or 'nspawn' for root
 *     await rt.create(spec);                      // unit files, upper dir; nothing runs
 *     await rt.start('web');                      // resolves once the unit is active
 *     (await rt.state('web')).status === 'running';
 *     for await (const line of rt.logs('web', { lines: 10 })) print(line);
 *     await rt.exec('web', ['sh'], { tty: true }); // exit status of the command inside
 *     await rt.stop('web', { timeoutSec: 10 });   // SIGTERM (or StopSignal), SIGKILL after 10 s
 *     await rt.remove('web');                     // every file, unit state and upper dir gone
 *
 * Errors are BerthErrors: NOT_FOUND for an unknown name, ALREADY_EXISTS from create(),
 * FAILED_PRECONDITION when the host cannot do what was asked (and the message says what
 * is missing), INVALID_ARGUMENT / UNSUPPORTED from the translators.
 */
import type { Digest } from '../base/digest.ts';
import { BerthError } from '../base/errors.ts';
import type { ContainerSpec } from '../container/spec.ts';

export type ContainerStatus = 'created' | 'running' | 'exited' | 'failed';

/** Whether a unit's ActiveState means its container runs (every backend is a systemd unit). */
export function isRunningState(activeState: string | undefined): boolean {
  return activeState === 'active' || activeState === 'activating' || activeState === 'deactivating' || activeState === 'reloading';
}

export interface ContainerState {
  name: string;
  /** Name of the runtime that owns it ('nspawn', 'bwrap'). */
  runtime: string;
  status: ContainerStatus;
  /** The systemd unit that supervises it (e.g. berth-sandbox@web.service). */
  unit: string;
  /** Host PID of the container's first process while it runs. */
  pid?: number;
  /** Exit status of the last run, when systemd recorded one. */
  exitCode?: number;
}

/** What a runtime's containers keep alive in the image store (see content/gc). */
export interface GcRoots {
  manifests: Digest[];
  chainIds: Digest[];
}

/** A published port (`-p [IP:]HOST:CONTAINER[/PROTO]`). Neutral; belongs in ContainerSpec once it can change. */
export interface PortMapping {
  /** Host address to bind; undefined = every address. */
  hostIp?: string;
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

export interface RuntimeCreateOptions {
  publish?: PortMapping[];
  /**
   * The caller starts (or runs attached) the container right after create(): a backend may
   * keep what it prepared (nspawn: the mounted rootfs) instead of undoing it. A hint only.
   */
  startSoon?: boolean;
  /**
   * The caller runs it in the foreground (runAttached) right after create(), in this
   * process: a backend may skip what only a start by its supervisor needs. A hint only.
   */
  attached?: boolean;
}

export interface RuntimeExecOptions {
  env?: string[];
  cwd?: string;
  user?: string;
  tty?: boolean;
  stdin?: boolean;
}

export interface RuntimeLogsOptions {
  /** Last N lines only. */
  lines?: number;
  follow?: boolean;
  /** journalctl --since syntax. */
  since?: string;
}

/** One row of `berth ps`: what a runtime can say about all its containers in one go. */
export interface ContainerSummary extends ContainerState {
  /** Image reference the container was created from. */
  image?: string;
  /** The command it runs (entrypoint + cmd). */
  command: string[];
  /** The unit's ActiveState/SubState words as systemd says them. */
  activeState: string;
  subState: string;
  /** UnitFileState (enabled, disabled, linked, ...), when known. */
  enabled?: string;
  /** When the unit entered its current state (ISO 8601), when known. */
  since?: string;
}

/** Foreground run: the container's process gets berth's stdio, and berth waits for it. */
export interface RuntimeAttachOptions {
  tty?: boolean;
  stdin?: boolean;
}

/** What enable() has to tell the user (e.g. "lingering is off: it starts at your login, not at boot"). */
export interface EnableResult {
  warnings: string[];
}

/** One backend. Every method is safe to call on a name the runtime does not know (NOT_FOUND). */
export interface Runtime {
  /** The name it is registered under. */
  readonly name: string;
  /** Writes what the container needs to start (units, dirs); runs nothing. ALREADY_EXISTS if taken. */
  create(spec: ContainerSpec, opts?: RuntimeCreateOptions): Promise<void>;
  /** Starts the unit; resolves once it is active. */
  start(name: string): Promise<void>;
  /** Stops with the stop signal; SIGKILL after timeoutSec (default: the spec's stop timeout). */
  stop(name: string, opts?: { timeoutSec?: number }): Promise<void>;
  /** Sends a signal to the container's processes (default SIGKILL). FAILED_PRECONDITION if not running. */
  kill(name: string, signal?: string): Promise<void>;
  /** Removes every trace; a running container only with force (killed first). */
  remove(name: string, opts?: { force?: boolean }): Promise<void>;
  state(name: string): Promise<ContainerState>;
  /** Names of this runtime's containers (for this owner). */
  list(): Promise<string[]>;
  /** Runs argv inside the running container with inherited stdio; resolves with its exit status. */
  exec(name: string, argv: string[], opts?: RuntimeExecOptions): Promise<number>;
  /** The container's output, line by line (the unit's journal). */
  logs(name: string, opts?: RuntimeLogsOptions): AsyncIterable<string>;
  /** Images and snapshots in use by this runtime's containers. */
  gcRoots(): Promise<GcRoots>;
  /**
   * Every container of this runtime (for this owner) with its state, in one pass: `ps` must
   * not cost per container. `detail` (ps --json) may add per-container reads (since, PIDs).
   */
  summaries(opts?: { detail?: boolean }): Promise<ContainerSummary[]>;
  /**
   * Runs a created container in the foreground: its first process gets berth's stdio (a
   * terminal with tty, stdin only with stdin), berth's SIGINT/SIGTERM go to it, and the
   * promise resolves with its exit status (128+N for a signal). Same isolation, limits and
   * network as start(). The container is left created (the caller removes it for --rm).
   */
  runAttached(name: string, opts?: RuntimeAttachOptions): Promise<number>;
  /** Start at boot (nspawn: machines.target.wants; bwrap: default.target.wants of the user's manager). */
  enable(name: string): Promise<EnableResult>;
  disable(name: string): Promise<void>;
  /** The container's published ports (empty when none). */
  ports(name: string): Promise<PortMapping[]>;
}

/** What every backend is built from; backends add their own fields through `options`. */
export interface RuntimeContext {
  /** The image store root (/var/lib/berth for root, $XDG_DATA_HOME/berth for a user). */
  storeRoot: string;
  /** Backend-specific settings (paths, helper binaries), read by the backend's factory. */
  options?: Readonly<Record<string, unknown>>;
}

export type RuntimeFactory = (ctx: RuntimeContext) => Runtime;

/**
 * Backends register a factory under a name; the manager looks the name up (from a flag, a
 * config file or "root → nspawn, user → bwrap"). containerd's plugin registration, small.
 */
export class RuntimeRegistry {
  private readonly factories = new Map<string, RuntimeFactory>();

  register(name: string, factory: RuntimeFactory): this {
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(name)) throw new BerthError('INVALID_ARGUMENT', `runtime name "${name}" is not [a-z][a-z0-9-]*`);
    if (this.factories.has(name)) throw new BerthError('ALREADY_EXISTS', `runtime "${name}" is already registered`);
    this.factories.set(name, factory);
    return this;
  }

  has(name: string): boolean {
    return this.factories.has(name);
  }

  /** The factory for name; NOT_FOUND names the runtimes that exist. */
  get(name: string): RuntimeFactory {
    const f = this.factories.get(name);
    if (!f) {
      throw new BerthError('NOT_FOUND', `unknown runtime "${name}" (known: ${this.names().join(', ') || 'none'})`, { details: { runtime: name } });
    }
    return f;
  }

  /** Builds the runtime and checks that it calls itself by the name it was registered under. */
  create(name: string, ctx: RuntimeContext): Runtime {
    const rt = this.get(name)(ctx);
    if (rt.name !== name) throw new BerthError('INTERNAL', `runtime registered as "${name}" calls itself "${rt.name}"`);
    return rt;
  }

  names(): string[] {
    return [...this.factories.keys()].sort();
  }
}
