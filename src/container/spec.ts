/**
 * @module container/spec
 * The one neutral description of a container (nspawn's single `Settings`): built from the
 * image config plus the user's flags, consumed by the pure translators (→ .nspawn file,
 * → service drop-ins) and by the runtime shell. Nothing here does I/O.
 */
import type { Digest } from '../base/digest.ts';

export type RestartPolicy = 'no' | 'on-failure' | 'always';

/**
 * A volume (bind mount of a host path). Podman's meaning, not Docker's userns-remap one:
 * - by default the source is bound as it is: files the container creates there belong to
 *   the container's mapped host UIDs, and host root's files look like `nobody` inside;
 * - `idmap` (explicit opt-in) maps the container's UID range onto the source's owners, so
 *   container root acts as the source's root — host root for a root-owned directory;
 * - `chown` (`:U`) gives the source tree to the container's root before the start;
 * - nosuid and nodev unless `suid` / `dev` are asked for; `noexec` on request.
 */
export interface BindMountSpec {
  type: 'bind';
  source: string;
  target: string;
  readonly: boolean;
  idmap?: boolean;
  chown?: boolean;
  suid?: boolean;
  dev?: boolean;
  noexec?: boolean;
}

export type MountSpec = BindMountSpec | { type: 'tmpfs'; target: string; options?: string };

/** A published port: host port 0 means "pick a free one" (at create time). */
export interface PublishSpec {
  hostIp?: string;
  hostPort: number;
  containerPort: number;
  proto: 'tcp' | 'udp';
}

/**
 * The machine's networking, in neutral words (network/ turns it into what a runtime runs):
 * - host: the host's network namespace;
 * - private: a namespace with loopback only (`--network=none|private`);
 * - link: a namespace with a bare point-to-point link to the host that berth leaves
 *   unconfigured (`--network=veth`, for hand-made setups);
 * - zone: an address in a zone (default `berth`): router, NAT, resolver, names, ports.
 */
export interface NetworkSpec {
  mode: 'host' | 'private' | 'link' | 'zone';
  zone?: string;
  /** --ip: a fixed address in the zone. */
  ip?: string;
  publish?: PublishSpec[];
  /** --network-alias: more names the machine is found by in its zone. */
  aliases?: string[];
  /** --dns: replaces the resolvers in the machine's resolv.conf. */
  dns?: string[];
  /** --add-host NAME:IP ("host-gateway": the zone's gateway). */
  addHosts?: Array<{ name: string; ip: string }>;
}

export interface ContainerSpec {
  /** Machine name = unit instance name: systemd-nspawn@NAME.service. */
  name: string;
  image: {
    /** The reference the user gave, normalized (docker.io/library/busybox:latest). */
    ref: string;
    /** Manifest digest. */
    digest: Digest;
    /** Image ID (config digest). */
    id: Digest;
    /** Layer snapshots bottom-first (chain IDs). */
    chainIds: Digest[];
  };
  process: {
    /** argv after entrypoint+cmd resolution; empty only with boot=true. */
    args: string[];
    /** KEY=VALUE, image env first, then user env (later wins). */
    env: string[];
    cwd: string;
    /** USER[:GROUP] as given (name or number). */
    user?: string;
    tty: boolean;
    stdin: boolean;
  };
  mounts: MountSpec[];
  readOnlyRoot: boolean;
  hostname?: string;
  resources: {
    /** Bytes. */
    memoryMax?: number;
    /** Percent of one CPU: --cpus 1.5 → 150. */
    cpuQuotaPercent?: number;
    tasksMax?: number;
  };
  slice?: string;
  restart: RestartPolicy;
  /** on-failure:N — at most N restarts (approximated with StartLimitBurst). */
  restartMaxRetries?: number;
  /** Signal name, e.g. SIGTERM (image StopSignal or --stop-signal). */
  stopSignal?: string;
  stopTimeoutSec?: number;
  /** Run the image's own init (--boot). */
  boot: boolean;
  /**
   * 'private': the container has its own user namespace, its root an unprivileged ID range
   * the runtime chooses (nspawn: a fixed 65536-ID range it picks, with idmapped lowers;
   * bwrap: the user and their subordinate IDs); 'host': no user namespace of its own.
   */
  userns: 'private' | 'host';
  network: NetworkSpec;
  /** Free-form labels recorded in the .nspawn file's comments for `berth inspect`. */
  labels: Record<string, string>;
}
