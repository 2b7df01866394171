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

export async function openServices(g: GlobalOptions, opts: { unpack?: boolean } = {}): Promise<Services> {
  return open({
    root: storeRoot(g), unpack: opts.unpack,
    unpacker: process.getuid?.() === 0 ? 'snapshots' : 'rootless',
    snapshotFormat: g.snapshotFormat ?? process.env.BERTH_SNAPSHOT_FORMAT,
    notice: (m) => process.stderr.write(`berth: ${m}\n`),
  });
}
