/**
 * @module container/build-spec
 * Image config + parsed `berth run` flags → ContainerSpec, with Docker's rules:
 * - `--entrypoint X` replaces the image Entrypoint with [X] and drops the image Cmd;
 *   `--entrypoint ""` clears it; arguments after the image replace Cmd.
 * - argv = entrypoint ++ cmd; empty without --boot → INVALID_ARGUMENT "image has no command".
 * - With --boot the image's own init runs; the arguments go to it and Entrypoint/Cmd are unused.
 * - Env: image Env, then the user's (a later KEY replaces an earlier one in place); PATH is
 *   added with Docker's default when neither sets it.
 * - WorkingDir defaults to "/"; -u beats the image User; --stop-signal beats StopSignal.
 * Pure: environment lookups and files were resolved by parse-flags.
 */
import type { Digest } from '../base/digest.ts';
import { BerthError } from '../base/errors.ts';
import type { ImageConfig } from '../oci/types.ts';
import { validateMachineName } from './names.ts';
import { parseSignal } from './parse-flags.ts';
import type { ContainerSpec, MountSpec, RestartPolicy } from './spec.ts';

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ImageForSpec {
  ref: string;
  digest: Digest;
  id: Digest;
  chainIds: Digest[];
  config: ImageConfig;
}

export interface RunFlags {
  name: string;
  /** --entrypoint; "" clears the image's entrypoint. */
  entrypoint?: string;
  /** Arguments after the image reference. */
  args: string[];
  /** KEY=VALUE from -e and --env-file, already resolved, in command-line order. */
  env?: string[];
  workdir?: string;
  user?: string;
  mounts?: MountSpec[];
  readOnly?: boolean;
  hostname?: string;
  memoryMax?: number;
  cpuQuotaPercent?: number;
  tasksMax?: number;
  slice?: string;
  restart?: RestartPolicy;
  restartMaxRetries?: number;
  stopSignal?: string;
  stopTimeoutSec?: number;
  boot?: boolean;
  tty?: boolean;
  stdin?: boolean;
  userns?: 'private' | 'host';
  network?: ContainerSpec['network'];
  labels?: Record<string, string>;
}

export function buildSpec(image: ImageForSpec, flags: RunFlags): ContainerSpec {
  const name = validateMachineName(flags.name);
  const cfg = image.config.config ?? {};
  const boot = flags.boot ?? false;
  const args = boot ? [...flags.args] : resolveArgv(cfg.Entrypoint ?? [], cfg.Cmd ?? [], flags);
  if (args.length === 0 && !boot) {
    throw new BerthError('INVALID_ARGUMENT', `image ${image.ref} has no command: give one after the image name, or use --entrypoint or --boot`);
  }
  const cwd = flags.workdir ?? (cfg.WorkingDir || '/');
  if (!cwd.startsWith('/')) throw new BerthError('INVALID_ARGUMENT', `working directory "${cwd}" must be absolute`);
  const user = flags.user ?? (cfg.User || undefined);
  const stop = flags.stopSignal ?? (cfg.StopSignal ? parseSignal(cfg.StopSignal, 'image StopSignal') : undefined);

  const spec: ContainerSpec = {
    name,
    image: { ref: image.ref, digest: image.digest, id: image.id, chainIds: [...image.chainIds] },
    process: { args, env: mergeEnv(cfg.Env ?? [], flags.env ?? []), cwd, tty: flags.tty ?? false, stdin: flags.stdin ?? false },
    mounts: [...(flags.mounts ?? [])],
    readOnlyRoot: flags.readOnly ?? false,
    resources: {},
    restart: flags.restart ?? 'no',
    boot,
    userns: flags.userns ?? 'private',
    network: flags.network ?? { mode: 'zone' },
    labels: { ...(cfg.Labels ?? {}), ...(flags.labels ?? {}) },
  };
  if (user !== undefined) spec.process.user = user;
  if (flags.hostname !== undefined) spec.hostname = flags.hostname;
  if (flags.memoryMax !== undefined) spec.resources.memoryMax = flags.memoryMax;
  if (flags.cpuQuotaPercent !== undefined) spec.resources.cpuQuotaPercent = flags.cpuQuotaPercent;
  if (flags.tasksMax !== undefined) spec.resources.tasksMax = flags.tasksMax;
  if (flags.slice !== undefined) spec.slice = flags.slice;
  if (flags.restartMaxRetries !== undefined) spec.restartMaxRetries = flags.restartMaxRetries;
  if (stop !== undefined) spec.stopSignal = stop;
  if (flags.stopTimeoutSec !== undefined) spec.stopTimeoutSec = flags.stopTimeoutSec;
  return spec;
}

function resolveArgv(imageEntrypoint: readonly string[], imageCmd: readonly string[], flags: RunFlags): string[] {
  let entrypoint = [...imageEntrypoint];
  let cmd = [...imageCmd];
  if (flags.entrypoint !== undefined) {
    entrypoint = flags.entrypoint === '' ? [] : [flags.entrypoint];
    cmd = [];
  }
  if (flags.args.length > 0) cmd = [...flags.args];
  return [...entrypoint, ...cmd];
}

/** Later KEY replaces an earlier one in place; PATH defaults like Docker. */
export function mergeEnv(imageEnv: readonly string[], userEnv: readonly string[]): string[] {
  const m = new Map<string, string>();
  for (const kv of [...imageEnv, ...userEnv]) {
    const eq = kv.indexOf('=');
    m.set(eq < 0 ? kv : kv.slice(0, eq), eq < 0 ? `${kv}=` : kv);
  }
  if (!m.has('PATH')) return [DEFAULT_PATH, ...m.values()];
  return [...m.values()];
}
