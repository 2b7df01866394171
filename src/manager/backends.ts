/**
 * @module manager/backends
 * The runtimes berth ships, registered by name in a RuntimeRegistry, plus what the manager
 * must know about each to serve it (how its layers are unpacked, its default network).
 * Backends are imported only when asked for: `ps` as root loads the nspawn listing code,
 * never bwrap's, and the other way round for a user.
 */
import { BerthError } from '../base/errors.ts';
import { RuntimeRegistry, type RuntimeFactory } from '../runtime/runtime.ts';
import type { NetworkDefaults } from './flags.ts';

export interface Backend {
  load(): Promise<RuntimeFactory>;
  /** How a pull for this backend turns layers into what it mounts. */
  unpacker: 'snapshots' | 'rootless';
  network(): Promise<NetworkDefaults>;
  /** Whether its containers join berth's network zones (`berth zone …` manages them). */
  zones: boolean;
}

export const BACKENDS: Readonly<Record<string, Backend>> = {
  nspawn: {
    load: async () => (await import('../machine/runtime.ts')).createNspawnRuntime,
    unpacker: 'snapshots',
    zones: true,
    // The zone `berth` when systemd is PID 1; without it (CI containers, this kind of VM)
    // loopback only, so an attached run never creates bridges or rules in a host namespace
    // nobody asked it to touch.
    network: async () => {
      const { systemdIsPid1 } = await import('../runtime/nspawn/systemd.ts');
      return { mode: systemdIsPid1() ? 'zone' : 'private', publishModes: ['zone'] };
    },
  },
  bwrap: {
    load: async () => (await import('../runtime/bwrap/runtime.ts')).createBwrapRuntime,
    unpacker: 'rootless',
    zones: false,
    // Its own network namespace with outbound access through pasta; -p goes through pasta.
    network: async () => ({ mode: 'link', publishModes: ['link'] }),
  },
};

export const BACKEND_NAMES: readonly string[] = Object.keys(BACKENDS).sort();

/** A registry holding the named backends (all when names is omitted), loaded now. */
export async function loadRuntimes(names: readonly string[] = BACKEND_NAMES): Promise<RuntimeRegistry> {
  const reg = new RuntimeRegistry();
  for (const n of names) {
    const b = BACKENDS[n];
    if (b) reg.register(n, await b.load());
  }
  return reg;
}

/**
 * Zones are host networks (bridges, nft rules, /etc/berth) of the nspawn runtime; a runtime
 * without them (a user's) refuses `berth zone …` instead of showing root's zones and the
 * names of root's machines in them.
 */
export function requireZones(runtime: string): void {
  if (BACKENDS[runtime]?.zones) return;
  throw new BerthError('UNSUPPORTED', `network zones belong to root's containers (the nspawn runtime); the ${runtime} runtime's containers have a network of their own (the default, with -p through pasta), --network=none or --network=host`, { details: { runtime } });
}
