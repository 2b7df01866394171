/**
 * @module manager/manager
 * The application layer: what `berth` (and the Docker-compatible API planned next) calls.
 * One Manager serves one caller: it knows the store root, the runtime picked for the caller
 * (by name from the registry: root → nspawn, a user → bwrap, `--runtime` may override), and
 * turns verbs into store, snapshot and Runtime calls. Inputs and outputs are data: no
 * stdout, no commander types; progress and notices go to callbacks.
 *
 * Verbs a backend cannot do throw UNSUPPORTED from the backend; verbs only one backend has
 * (rename, machinectl status, inspect) are offered when the runtime implements them.
 */
import { readFile } from 'node:fs/promises';
import { BerthError, isBerthError } from '../base/errors.ts';
import { trace } from '../base/trace.ts';
import type { Digest } from '../base/digest.ts';
import type { ContainerSpec } from '../container/spec.ts';
import type { PullEvent, PullResult } from '../image/pull.ts';
import type { LocalImage } from '../image/local.ts';
import type {
  ContainerState, ContainerSummary, EnableResult, GcRoots, PortMapping, Runtime, RuntimeExecOptions, RuntimeLogsOptions,
} from '../runtime/runtime.ts';
import { BACKENDS, BACKEND_NAMES, loadRuntimes } from './backends.ts';
import { chooseRuntime, runtimesFor } from './choose.ts';
import type { RunRequestFlags } from './flags.ts';
import { openServices, registryFor, storeRootFor, type RegistryFlags, type Services } from './services.ts';

export interface ManagerOptions {
  /** Effective UID of the caller (process.getuid()). */
  uid: number;
  home: string;
  env: NodeJS.ProcessEnv;
  /** --root */
  root?: string;
  /** --runtime */
  runtime?: string;
  /** --snapshot-format */
  snapshotFormat?: string;
  /** Root only: a read-only view of this user's containers. */
  asUser?: string;
  /** Messages for the user that are not errors ("berth: …" on stderr in the CLI). */
  notice?: (message: string) => void;
}

export interface PullRequest extends RegistryFlags {
  reference: string;
  platform?: string;
  onEvent?: (e: PullEvent) => void;
  signal?: AbortSignal;
}

export interface RunRequest {
  image: string;
  args: string[];
  flags: RunRequestFlags;
  /** Called when the image is not in the store (the CLI pulls with its progress display). */
  pull?: (reference: string) => Promise<void>;
}

/** Optional verbs a runtime may add (nspawn has them all). */
interface Extras {
  rename?(from: string, to: string): Promise<void>;
  detailedStatus?(name: string, opts?: { lines?: number }): Promise<{ data: unknown; text: string }>;
  inspect?(name: string): Promise<Record<string, unknown>>;
  imageUsers?(): Promise<Array<{ container: string; digest: string }>>;
  exists?(name: string): Promise<boolean>;
  /** One container's row of summaries(), without reading every container's (NOT_FOUND if unknown). */
  summary?(name: string): Promise<ContainerSummary>;
  /** Throws when the host cannot run containers in the background (nspawn: PID 1 is not systemd). */
  checkDetach?(): void;
}

export interface StatusView {
  /** JSON form. */
  data: unknown;
  /** Human form. */
  text: string;
}

export class Manager {
  private constructor(
    readonly runtimeName: string,
    readonly storeRoot: string,
    readonly runtime: Runtime & Extras,
    private readonly o: ManagerOptions,
  ) {}

  static async open(o: ManagerOptions): Promise<Manager> {
    if (o.asUser !== undefined) {
      if (o.uid !== 0) throw new BerthError('PERMISSION_DENIED', `--user ${o.asUser}: only root may look at another user's containers; your own are listed without --user`);
      const { lookupAccount, UserView } = await import('./user-view.ts');
      const account = await lookupAccount(o.asUser);
      const root = storeRootFor({ env: {}, uid: account.uid, home: account.home });
      return new Manager('bwrap', root, new UserView(account), o);
    }
    const name = chooseRuntime({ uid: o.uid, flag: o.runtime, env: o.env.BERTH_RUNTIME, known: BACKEND_NAMES });
    const root = storeRootFor({ root: o.root, env: o.env, uid: o.uid, home: o.home });
    const reg = await loadRuntimes([name]);
    return new Manager(name, root, reg.create(name, { storeRoot: root }) as Runtime & Extras, o);
  }

  private notice(m: string): void {
    this.o.notice?.(m);
  }

  /** The store and unpacker this caller's runtime uses. */
  services(opts: { unpack?: boolean } = {}): Promise<Services> {
    return openServices({
      root: this.storeRoot, unpack: opts.unpack, unpacker: BACKENDS[this.runtimeName]?.unpacker ?? 'snapshots',
      snapshotFormat: this.o.snapshotFormat ?? this.o.env.BERTH_SNAPSHOT_FORMAT, ...(this.o.notice ? { notice: this.o.notice } : {}),
    });
  }

  async pull(r: PullRequest): Promise<PullResult> {
    const { parseReference } = await import('../reference/index.ts');
    const { parsePlatform } = await import('../image/platform.ts');
    const { pullImage, prefetchManifest } = await import('../image/pull.ts');
    const { Leases } = await import('../content/index.ts');
    const ref = parseReference(r.reference);
    const platform = r.platform ? parsePlatform(r.platform) : undefined;
    // the first manifest request runs while the store opens (its errors come first)
    const svcP = this.services();
    svcP.catch(() => {});
    const registryP = registryFor(ref, r).then((c) => prefetchManifest(c, ref));
    registryP.catch(() => {});
    const svc = await svcP;
    const registry = await registryP;
    return pullImage(ref, { registry, store: svc.store, unpacker: svc.unpacker, leases: new Leases(svc.root) }, {
      platform, ...(r.onEvent ? { onEvent: r.onEvent } : {}), ...(r.signal ? { signal: r.signal } : {}),
    });
  }

  private async exists(name: string): Promise<boolean> {
    if (this.runtime.exists) return this.runtime.exists(name);
    try {
      await this.runtime.state(name);
      return true;
    } catch (e) {
      if (isBerthError(e, 'NOT_FOUND')) return false;
      throw e;
    }
  }

  private async freeName(): Promise<string> {
    const { generateName } = await import('../container/names.ts');
    const taken = new Set<string>();
    let name = generateName((n) => taken.has(n));
    while (await this.exists(name)) {
      taken.add(name);
      name = generateName((n) => taken.has(n));
    }
    return name;
  }

  private async imageFor(ref: string, pull?: (reference: string) => Promise<void>): Promise<LocalImage> {
    const { resolveOne } = await import('../image/local.ts');
    const svc = await this.services({ unpack: false });
    try {
      return await resolveOne(svc.store, ref);
    } catch (e) {
      if (!isBerthError(e, 'NOT_FOUND') || !pull) throw e;
    }
    await pull(ref);
    return resolveOne(svc.store, ref);
  }

  /** The spec run/create would use (flags → neutral spec, image resolved or pulled). */
  async buildSpec(req: RunRequest, name: string): Promise<ContainerSpec> {
    const image = await this.imageFor(req.image, req.pull);
    trace('image resolved');
    const { chainIds } = await import('../oci/chain-id.ts');
    const envFiles: Array<{ path: string; text: string }> = [];
    for (const path of req.flags.envFile ?? []) envFiles.push({ path, text: await readFile(path, 'utf8') });
    const network = await BACKENDS[this.runtimeName]!.network();
    const { specFromFlags } = await import('./flags.ts');
    return specFromFlags({
      image: { name: image.name, digest: image.digest, id: image.id, chainIds: chainIds(image.config.rootfs.diff_ids), config: image.config },
      ref: req.image, args: req.args, flags: req.flags, name, envFiles, environ: this.o.env, network,
    });
  }

  private async prepare(req: RunRequest, startSoon: boolean, attached = false): Promise<ContainerSpec> {
    const name = req.flags.name ?? (await this.freeName());
    trace('name chosen');
    const spec = await this.buildSpec(req, name);
    const { publishedPorts } = await import('./flags.ts');
    await this.runtime.create(spec, { publish: publishedPorts(spec), startSoon, ...(attached ? { attached } : {}) });
    trace('container created');
    return spec;
  }

  async create(req: RunRequest): Promise<{ name: string }> {
    return { name: (await this.prepare(req, false)).name };
  }

  /**
   * run -d: create, start, resolve with the name once the unit is active. Foreground:
   * create, run attached, remove with --rm; resolves with the exit status.
   */
  async run(req: RunRequest): Promise<{ name: string; exitCode?: number }> {
    const f = req.flags;
    if (f.detach) {
      if (f.rm) throw new BerthError('INVALID_ARGUMENT', '--rm with -d is not supported: no berth process stays behind to remove the container');
      this.runtime.checkDetach?.();
    }
    const spec = await this.prepare(req, true, !f.detach);
    if (f.detach) {
      try {
        await this.runtime.start(spec.name);
        trace('unit active');
      } catch (e) {
        this.notice(`container ${spec.name} was created but did not start (remove it with \`berth rm ${spec.name}\`)`);
        throw e;
      }
      return { name: spec.name };
    }
    trace('foreground: starting');
    try {
      const exitCode = await this.runtime.runAttached(spec.name, { tty: spec.process.tty, stdin: spec.process.stdin });
      return { name: spec.name, exitCode };
    } finally {
      trace('foreground: container exited');
      if (f.rm) await this.runtime.remove(spec.name, { force: true });
      if (f.rm) trace('removed');
    }
  }

  start(name: string): Promise<void> {
    return this.runtime.start(name);
  }

  stop(name: string, opts: { timeoutSec?: number } = {}): Promise<void> {
    return this.runtime.stop(name, opts);
  }

  async restart(name: string, opts: { timeoutSec?: number } = {}): Promise<void> {
    await this.runtime.stop(name, opts);
    await this.runtime.start(name);
  }

  kill(name: string, signal?: string): Promise<void> {
    return this.runtime.kill(name, signal);
  }

  remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    return this.runtime.remove(name, opts);
  }

  async rename(from: string, to: string): Promise<void> {
    if (!this.runtime.rename) throw new BerthError('UNSUPPORTED', `the ${this.runtimeName} runtime cannot rename a container: create a new one with --name ${to} and remove ${from}`);
    await this.runtime.rename(from, to);
  }

  /** `ps`: running containers, or all with `all`. */
  async ps(opts: { all?: boolean; detail?: boolean } = {}): Promise<ContainerSummary[]> {
    const rows = await this.runtime.summaries({ detail: opts.detail });
    return rows.filter((r) => opts.all || r.status === 'running');
  }

  state(name: string): Promise<ContainerState> {
    return this.runtime.state(name);
  }

  /** state() and the summaries() row of one container: one read where the runtime has summary(). */
  private async stateAndRow(name: string): Promise<{ st: ContainerState; row: ContainerSummary | undefined }> {
    if (this.runtime.summary) {
      const r = await this.runtime.summary(name);
      const st: ContainerState = { name: r.name, runtime: r.runtime, status: r.status, unit: r.unit, ...(r.pid !== undefined ? { pid: r.pid } : {}), ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}) };
      return { st, row: r };
    }
    const st = await this.runtime.state(name);
    return { st, row: (await this.runtime.summaries()).find((s) => s.name === name) };
  }

  /** The runtime's own detailed status where it has one; else state, ports and the journal's tail. */
  async status(name: string, opts: { lines?: number } = {}): Promise<StatusView> {
    if (this.runtime.detailedStatus) return this.runtime.detailedStatus(name, opts);
    const { st, row } = await this.stateAndRow(name);
    const ports = await this.runtime.ports(name).catch(() => [] as PortMapping[]);
    const lines: string[] = [];
    for await (const l of this.runtime.logs(name, { lines: opts.lines ?? 10 })) lines.push(l);
    const data = { ...st, image: row?.image, activeState: row?.activeState, subState: row?.subState, enabled: row?.enabled, ports, logs: lines };
    const text = [
      `${name} (${st.unit})`,
      `  Runtime: ${st.runtime}`,
      `    State: ${st.status}${row ? ` (${row.activeState}/${row.subState})` : ''}${st.exitCode !== undefined ? `, exit code ${st.exitCode}` : ''}`,
      ...(st.pid ? [`      PID: ${st.pid}`] : []),
      ...(row?.image ? [`    Image: ${row.image}`] : []),
      ...(row?.enabled ? [`  Enabled: ${row.enabled}`] : []),
      ...(ports.length ? [`    Ports: ${ports.map((p) => `${p.hostIp ?? '0.0.0.0'}:${p.hostPort}->${p.containerPort}/${p.protocol}`).join(', ')}`] : []),
      '', ...lines,
    ].join('\n');
    return { data, text: `${text}\n` };
  }

  async inspect(name: string): Promise<Record<string, unknown>> {
    if (this.runtime.inspect) return this.runtime.inspect(name);
    const { st, row } = await this.stateAndRow(name);
    return { Name: name, Runtime: st.runtime, Unit: st.unit, Image: row?.image, State: st, Ports: await this.runtime.ports(name) };
  }

  logs(name: string, opts: RuntimeLogsOptions = {}): AsyncIterable<string> {
    return this.runtime.logs(name, opts);
  }

  exec(name: string, argv: string[], opts: RuntimeExecOptions = {}): Promise<number> {
    return this.runtime.exec(name, argv, opts);
  }

  enable(name: string): Promise<EnableResult> {
    return this.runtime.enable(name);
  }

  disable(name: string): Promise<void> {
    return this.runtime.disable(name);
  }

  ports(name: string): Promise<PortMapping[]> {
    return this.runtime.ports(name);
  }

  /** Which containers use which manifest (rmi refuses to untag those). */
  async imageUsers(): Promise<Array<{ container: string; digest: string }>> {
    if (this.runtime.imageUsers) return this.runtime.imageUsers();
    return (await this.runtime.gcRoots()).manifests.map((d) => ({ container: 'a container', digest: d }));
  }

  /** GC roots of every runtime of this owner (they share the store). */
  async gcRoots(): Promise<GcRoots> {
    const names = runtimesFor(this.o.uid);
    const reg = await loadRuntimes(names.filter((n) => n !== this.runtimeName)); // this one is loaded
    const roots: GcRoots = { manifests: [], chainIds: [] };
    for (const n of names) {
      const rt = n === this.runtimeName ? this.runtime : reg.create(n, { storeRoot: this.storeRoot });
      const r = await rt.gcRoots();
      roots.manifests.push(...r.manifests);
      roots.chainIds.push(...r.chainIds);
    }
    return roots;
  }

  /** Removes blobs and snapshots that no image name and no container of this owner uses. */
  async prune(): Promise<{ blobs: number; snapshots: number; freedBytes: number }> {
    if (this.o.asUser !== undefined) throw new BerthError('PERMISSION_DENIED', '--user is a read-only view: prune a user\'s store as that user');
    const { pruneStore } = await import('../image/maintenance.ts');
    // Blobs always; snapshots where the store can list and remove them (root's snapshot
    // store; a user's dir snapshots stay until the rootless unpacker can prune them).
    const svc = await this.services({ unpack: BACKENDS[this.runtimeName]?.unpacker === 'snapshots' });
    const roots = await this.gcRoots();
    return pruneStore(svc, { manifests: roots.manifests as Digest[], chainIds: roots.chainIds as Digest[] });
  }
}
