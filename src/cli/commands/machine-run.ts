/**
 * @module cli/commands/machine-run
 * `berth run` and `berth create`: resolve (or pull) the image, build the ContainerSpec from
 * the flags, create the machine, then start it as systemd-nspawn@NAME.service (-d) or run
 * it attached in the foreground. `-d` refuses with FAILED_PRECONDITION when PID 1 is not
 * systemd; the foreground path works either way. `--rm` in the foreground removes the
 * machine when it exits; `-d --rm` is refused (no berth process stays behind to do it).
 */
import { readFile } from 'node:fs/promises';
import type { GlobalOptions } from '../program.ts';
import { openServices, type Services } from '../services.ts';
import { BerthError, isBerthError } from '../../base/errors.ts';
import { trace } from '../../base/trace.ts';
import { buildSpec, type RunFlags } from '../../container/build-spec.ts';
import { generateName } from '../../container/names.ts';
import {
  parseCpus, parseEnvFile, parseEnvFlag, parseMemory, parsePidsLimit, parseRestart, parseSignal, parseStopTimeout, parseTmpfs,
  parseUser, parseVolume,
} from '../../container/parse-flags.ts';
import type { ContainerSpec, NetworkSpec } from '../../container/spec.ts';
import {
  DEFAULT_ZONE, ensureZoneRunning, exposedToRequests, isIPv4, parseAddHost, parsePublish, readAttachment, runtimeNetwork, validateDnsName,
  validateZoneName,
} from '../../network/index.ts';
import { chainIds } from '../../oci/chain-id.ts';
import { resolveOne, type LocalImage } from '../../image/local.ts';
import { SnapshotStore } from '../../snapshot/index.ts';
import { createMachine, machineExists, removeMachine, startMachine, type MachineContext } from '../../machine/index.ts';
import { requireSystemd, runForeground, systemdIsPid1 } from '../../runtime/nspawn/index.ts';

export interface RunCliFlags {
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

async function imageFor(svc: Services, g: GlobalOptions, ref: string): Promise<LocalImage> {
  try {
    return await resolveOne(svc.store, ref);
  } catch (e) {
    if (!isBerthError(e, 'NOT_FOUND')) throw e;
  }
  const { pullCommand } = await import('./pull.ts');
  await pullCommand(ref, { quiet: true } as never, g);
  return resolveOne(svc.store, ref);
}

async function specFrom(image: LocalImage, ref: string, args: string[], f: RunCliFlags): Promise<ContainerSpec> {
  const env: string[] = [];
  for (const file of f.envFile ?? []) env.push(...parseEnvFile(await readFile(file, 'utf8'), file, process.env));
  for (const e of f.env ?? []) {
    const v = parseEnvFlag(e, process.env);
    if (v !== undefined) env.push(v);
  }
  const restart = f.restart ? parseRestart(f.restart) : undefined;
  if (f.userns !== undefined && f.userns !== 'host' && f.userns !== 'pick' && f.userns !== 'auto') {
    throw new BerthError('INVALID_ARGUMENT', `--userns: expected host or auto, got ${f.userns}`);
  }
  const network = networkFlags(f, image);
  const flags: RunFlags = {
    name: f.name ?? '',
    entrypoint: f.entrypoint,
    args,
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
    userns: f.userns === 'host' ? 'host' : 'pick',
    network,
  };
  return buildSpec({ ref: image.name || ref, digest: image.digest, id: image.id, chainIds: chainIds(image.config.rootfs.diff_ids), config: image.config }, flags);
}

/**
 * --network and friends → the neutral NetworkSpec. Default: the zone `berth` when systemd
 * is PID 1; without it (CI containers, this kind of VM) loopback only, so an attached run
 * never creates bridges or rules in a host namespace nobody asked it to touch.
 */
function networkFlags(f: RunCliFlags, image: LocalImage): NetworkSpec {
  const raw = f.network ?? (systemdIsPid1() ? DEFAULT_ZONE : 'private');
  const zoneOnly = (flag: string, given: boolean): void => {
    if (given) throw new BerthError('INVALID_ARGUMENT', `${flag} needs a network zone (--network=NAME), not --network=${raw}`);
  };
  let spec: NetworkSpec;
  if (raw === 'host' || raw === 'private' || raw === 'none') spec = { mode: raw === 'host' ? 'host' : 'private' };
  else if (raw === 'veth') spec = { mode: 'link' };
  else spec = { mode: 'zone', zone: validateZoneName(raw === 'bridge' || raw === 'default' ? DEFAULT_ZONE : raw, '--network') };
  const publish = [...(f.publish ?? []).flatMap((p) => parsePublish(p)), ...(f.publishAll ? exposedToRequests(image.config.config?.ExposedPorts) : [])];
  if (spec.mode !== 'zone') {
    zoneOnly('-p/--publish', (f.publish ?? []).length > 0);
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
  if (publish.length) spec.publish = publish;
  if (f.networkAlias?.length) spec.aliases = f.networkAlias.map((a) => validateDnsName(a));
  if (f.dns?.length) {
    for (const d of f.dns) if (!isIPv4(d)) throw new BerthError('INVALID_ARGUMENT', `--dns "${d}" is not an IPv4 address`);
    spec.dns = [...f.dns];
  }
  if (f.addHost?.length) spec.addHosts = f.addHost.map((h) => parseAddHost(h));
  return spec;
}

async function prepare(ref: string, args: string[], f: RunCliFlags, g: GlobalOptions, keepMounted: boolean) {
  if (f.name === undefined) {
    const taken = new Set<string>();
    f.name = generateName((n) => taken.has(n));
    while (await machineExists(f.name)) {
      taken.add(f.name);
      f.name = generateName((n) => taken.has(n));
    }
  }
  trace('name chosen');
  const svc = await openServices(g, { unpack: false });
  const image = await imageFor(svc, g, ref);
  trace('image resolved');
  const spec = await specFrom(image, ref, args, f);
  const ctx: MachineContext = { berthRoot: svc.root, snapshots: new SnapshotStore(`${svc.root}/snapshots`) };
  const created = await createMachine(ctx, spec, { keepMounted });
  trace('machine created');
  return { spec, ctx, created };
}

export async function createCommand(ref: string, args: string[], f: RunCliFlags, g: GlobalOptions): Promise<void> {
  const { spec } = await prepare(ref, args, f, g, false);
  process.stdout.write(`${spec.name}\n`);
}

export async function runCommand(ref: string, args: string[], f: RunCliFlags, g: GlobalOptions): Promise<void> {
  if (f.detach) {
    if (f.rm) throw new BerthError('INVALID_ARGUMENT', '--rm with -d is not supported: no berth process stays behind to remove the container');
    requireSystemd('berth run -d');
  }
  const { spec, ctx, created } = await prepare(ref, args, f, g, true);
  if (f.detach) {
    try {
      await startMachine(spec.name);
      trace('unit active');
    } catch (e) {
      process.stderr.write(`berth: container ${spec.name} was created but did not start (remove it with \`berth rm ${spec.name}\`)\n`);
      throw e;
    }
    process.stdout.write(`${spec.name}\n`);
    return;
  }
  const properties: string[] = [];
  if (spec.resources.memoryMax !== undefined) properties.push(`MemoryMax=${spec.resources.memoryMax}`);
  if (spec.resources.cpuQuotaPercent !== undefined) properties.push(`CPUQuota=${spec.resources.cpuQuotaPercent}%`);
  if (spec.resources.tasksMax !== undefined) properties.push(`TasksMax=${spec.resources.tasksMax}`);
  let code: number;
  trace('foreground: starting systemd-nspawn');
  try {
    const att = await readAttachment(spec.name);
    if (att) await ensureZoneRunning(att.zone);
    code = await runForeground({
      name: spec.name, plan: created.plan, volumes: created.volumes, tty: spec.process.tty, stdin: spec.process.stdin, properties,
      slice: systemdIsPid1() ? spec.slice : undefined, network: att ? runtimeNetwork(att) : undefined,
    });
  } finally {
    trace('foreground: container exited, rootfs unmounted');
    if (f.rm) await removeMachine(ctx, spec.name, { force: true });
    if (f.rm) trace('removed');
  }
  process.exitCode = code;
}
