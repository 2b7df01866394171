/**
 * @module cli/services
 * The CLI's side of manager/services: global flags and the environment → ServiceOptions.
 * Image commands that are not about containers (images, inspect, import, export, fsck)
 * open the store through here; everything about containers goes through the manager.
 */
import type { GlobalOptions } from './program.ts';
import { storeRoot } from './context.ts';
import { openServices as open, type Services } from '../manager/services.ts';

export { registryFor, registriesConfPaths, type RegistryFlags, type Services } from '../manager/services.ts';

/** The store for the image commands that are not pulls (those go through the manager). */
export async function openServices(g: GlobalOptions, opts: { unpack?: boolean } = {}): Promise<Services> {
  const { BACKENDS } = await import('../manager/backends.ts');
  const { chooseRuntime } = await import('../manager/choose.ts');
  const runtime = chooseRuntime({ uid: process.getuid?.() ?? 0, flag: g.runtime, env: process.env.BERTH_RUNTIME, known: Object.keys(BACKENDS) });
  return open({
    root: storeRoot(g), unpack: opts.unpack, snapshotStore: true,
    unpacker: BACKENDS[runtime]!.unpacker,
    snapshotFormat: g.snapshotFormat ?? process.env.BERTH_SNAPSHOT_FORMAT,
    notice: (m) => process.stderr.write(`berth: ${m}\n`),
  });
}
