/**
 * @module snapshot
 * Public surface of the snapshot module: the store (LayerUnpacker for image/pull), image
 * mounts, chain IDs and the types. Other modules import from here only.
 */
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { SnapshotStore, type SnapshotStoreOptions } from './store.ts';

export { SnapshotStore, type SnapshotStoreOptions, type UnpackRequest } from './store.ts';
export { mountImage, umountImage, releaseUnusedLayers, overlayOptions } from './mount.ts';
export { chainId, chainIds } from '../oci/chain-id.ts';
export { defaultPolicy, SNAPSHOT_FORMATS } from './types.ts';
export type { SnapshotFormat, SnapshotInfo, SnapshotMeta, CheckResult, ExtractPolicy, Snapshotter, ActiveSnapshot } from './types.ts';

/** Default format for new snapshots; numbers in unpack.ts. */
export const DEFAULT_FORMAT = 'erofs' as const;

async function onPath(cmd: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (dir && (await access(join(dir, cmd), constants.X_OK).then(() => true, () => false))) return true;
  }
  return false;
}

/**
 * Opens the snapshot store at root (the puller's LayerUnpacker) and sweeps dead work areas.
 * Without an explicit format: DEFAULT_FORMAT, or 'dir' when erofs-utils is not installed.
 */
export async function openUnpacker(root: string, opts: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
  const format = opts.format ?? (DEFAULT_FORMAT === 'erofs' && !(await onPath('mkfs.erofs')) ? 'dir' : DEFAULT_FORMAT);
  const store = new SnapshotStore(root, { ...opts, format });
  await store.sweepWork();
  return store;
}
