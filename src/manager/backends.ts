/**
 * @module manager/backends
 * The runtimes berth ships, registered by name in a RuntimeRegistry, plus what the manager
 * must know about each to serve it (how its layers are unpacked, its default network).
 * Backends are imported only when asked for: `ps` as root loads the nspawn listing code,
 * never bwrap's, and the other way round for a user.
 */
import { RuntimeRegistry, type RuntimeFactory } from '../runtime/runtime.ts';
import type { NetworkDefaults } from './flags.ts';

export interface Backend {
  load(): Promise<RuntimeFactory>;
  /** How a pull for this backend turns layers into what it mounts. */
  unpacker: 'snapshots' | 'rootless';
  network(): Promise<NetworkDefaults>;
}

export const BACKENDS: Readonly<Record<string, Backend>> = {
  nspawn: {
    load: async () => (await import('../machine/runtime.ts')).createNspawnRuntime,
    unpacker: 'snapshots',
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
