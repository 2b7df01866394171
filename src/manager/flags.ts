/**
 * @module manager/flags
 * `run`/`create` flags (as data, the way the CLI or the planned Docker API hands them over)
 * → the neutral ContainerSpec, plus the published ports as the Runtime seam takes them.
 * Pure: env files arrive as text, the environment as a map, and what differs between
 * backends (their default network, where -p can go) as a {@link NetworkDefaults}.
 */
import { BerthError } from '../base/errors.ts';
import { buildSpec, type RunFlags } from '../container/build-spec.ts';
import {
  parseCpus, parseEnvFile, parseEnvFlag, parseMemory, parsePidsLimit, parseRestart, parseSignal, parseStopTimeout, parseTmpfs, parseUser, parseVolume,
} from '../container/parse-flags.ts';
import type { ContainerSpec, NetworkSpec } from '../container/spec.ts';
import type { ImageConfig } from '../oci/types.ts';
import type { PortMapping } from '../runtime/runtime.ts';
import { DEFAULT_ZONE, exposedToRequests, isIPv4, parseAddHost, parsePublish, validateDnsName, validateZoneName } from '../network/index.ts';

export interface RunRequestFlags {
  name?: string;
  detach?: boolean;
  rm?: boolean;
  interactive?: boolean;
  tty?: boolean;
  env?: string[];
  envFile?: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  volume?: string[];
  tmpfs?: string[];
  readOnly?: boolean;
  hostname?: string;
  memory?: string;
  cpus?: string;
  pidsLimit?: string;
  slice?: string;
  restart?: string;
  stopSignal?: string;
  stopTimeout?: string;
  boot?: boolean;
  userns?: string;
  network?: string;
  ip?: string;
  publish?: string[];
  publishAll?: boolean;
  networkAlias?: string[];
  dns?: string[];
  addHost?: string[];
}

/** What a backend's network looks like when the user says nothing. */
export interface NetworkDefaults {
  /** Mode without --network (nspawn: the zone `berth` under systemd, else loopback only; bwrap: its own netns through pasta = 'link'). */
  mode: NetworkSpec['mode'];
  /** Modes in which -p/--publish works (nspawn: zone; bwrap: link). */
  publishModes: ReadonlyArray<NetworkSpec['mode']>;
}

export interface ImageForRun {
  name?: string;
  digest: ContainerSpec['image']['digest'];
  id: ContainerSpec['image']['id'];
  chainIds: ContainerSpec['image']['chainIds'];
  config: ImageConfig;
}

/**
 * --network and friends → the neutral NetworkSpec. `host`, `none`/`private`, `veth`
 * (a bare link) and a zone NAME (`bridge`/`default` = the zone berth) are the words.
 */
export function networkFromFlags(f: RunRequestFlags, exposed: Readonly<Record<string, unknown>> | undefined, d: NetworkDefaults): NetworkSpec {
  const given = f.network;
  let spec: NetworkSpec;
  if (given === undefined) spec = d.mode === 'zone' ? { mode: 'zone', zone: DEFAULT_ZONE } : { mode: d.mode };
  else if (given === 'host' || given === 'private' || given === 'none') spec = { mode: given === 'host' ? 'host' : 'private' };
  else if (given === 'veth') spec = { mode: 'link' };
  else spec = { mode: 'zone', zone: validateZoneName(given === 'bridge' || given === 'default' ? DEFAULT_ZONE : given, '--network') };
  const raw = given ?? spec.mode;
  const publish = [...(f.publish ?? []).flatMap((p) => parsePublish(p)), ...(f.publishAll ? exposedToRequests(exposed) : [])];
  if (publish.length) {
    if (!d.publishModes.includes(spec.mode)) {
      throw new BerthError('INVALID_ARGUMENT', `-p/--publish needs ${d.publishModes.includes('zone') ? 'a network zone (--network=NAME)' : 'the default private network'}, not --network=${raw}`);
    }
    spec.publish = publish;
  }
  if (spec.mode !== 'zone') {
    const zoneOnly = (flag: string, isGiven: boolean): void => {
      if (isGiven) throw new BerthError('INVALID_ARGUMENT', `${flag} needs a network zone (--network=NAME), not --network=${raw}`);
    };
    zoneOnly('--ip', f.ip !== undefined);
    zoneOnly('--network-alias', (f.networkAlias ?? []).length > 0);
    zoneOnly('--dns', (f.dns ?? []).length > 0);
    zoneOnly('--add-host', (f.addHost ?? []).length > 0);
    return spec;
  }
  if (f.ip !== undefined) {
    if (!isIPv4(f.ip)) throw new BerthError('INVALID_ARGUMENT', `--ip "${f.ip}" is not an IPv4 address`);
    spec.ip = f.ip;
  }
  if (f.networkAlias?.length) spec.aliases = f.networkAlias.map((a) => validateDnsName(a));
  if (f.dns?.length) {
    for (const x of f.dns) if (!isIPv4(x)) throw new BerthError('INVALID_ARGUMENT', `--dns "${x}" is not an IPv4 address`);
    spec.dns = [...f.dns];
  }
  if (f.addHost?.length) spec.addHosts = f.addHost.map((h) => parseAddHost(h));
  return spec;
}

/** The flags → the neutral spec. envFiles: the text of each --env-file, in order. */
export function specFromFlags(i: {
  image: ImageForRun; ref: string; args: string[]; flags: RunRequestFlags; name: string;
  envFiles?: Array<{ path: string; text: string }>; environ: Readonly<Record<string, string | undefined>>; network: NetworkDefaults;
}): ContainerSpec {
  const f = i.flags;
  const env: string[] = [];
  for (const file of i.envFiles ?? []) env.push(...parseEnvFile(file.text, file.path, i.environ as NodeJS.ProcessEnv));
  for (const e of f.env ?? []) {
    const v = parseEnvFlag(e, i.environ as NodeJS.ProcessEnv);
    if (v !== undefined) env.push(v);
  }
  const restart = f.restart ? parseRestart(f.restart) : undefined;
  if (f.userns !== undefined && f.userns !== 'host' && f.userns !== 'pick' && f.userns !== 'auto' && f.userns !== 'private') {
    throw new BerthError('INVALID_ARGUMENT', `--userns: expected host or auto, got ${f.userns}`);
  }
  const network = networkFromFlags(f, i.image.config.config?.ExposedPorts, i.network);
  const flags: RunFlags = {
    name: i.name,
    entrypoint: f.entrypoint,
    args: i.args,
    env,
    workdir: f.workdir,
    user: f.user !== undefined ? parseUser(f.user) : undefined,
    mounts: [...(f.volume ?? []).map((v) => parseVolume(v)), ...(f.tmpfs ?? []).map((t) => parseTmpfs(t))],
    readOnly: f.readOnly,
    hostname: f.hostname,
    memoryMax: f.memory !== undefined ? parseMemory(f.memory) : undefined,
    cpuQuotaPercent: f.cpus !== undefined ? parseCpus(f.cpus) : undefined,
    tasksMax: f.pidsLimit !== undefined ? parsePidsLimit(f.pidsLimit) : undefined,
    slice: f.slice,
    restart: restart?.policy,
    restartMaxRetries: restart?.maxRetries,
    stopSignal: f.stopSignal !== undefined ? parseSignal(f.stopSignal) : undefined,
    stopTimeoutSec: f.stopTimeout !== undefined ? parseStopTimeout(f.stopTimeout) : undefined,
    boot: f.boot,
    tty: f.tty,
    stdin: f.interactive,
    userns: f.userns === 'host' ? 'host' : 'private',
    network,
  };
  const { chainIds } = i.image;
  return buildSpec({ ref: i.image.name || i.ref, digest: i.image.digest, id: i.image.id, chainIds, config: i.image.config }, flags);
}

/** The spec's published ports as the Runtime seam takes them (backends without zones publish from these). */
export function publishedPorts(spec: ContainerSpec): PortMapping[] {
  return (spec.network.publish ?? []).map((p) => ({ ...(p.hostIp ? { hostIp: p.hostIp } : {}), hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.proto }));
}
