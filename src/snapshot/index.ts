/**
 * @module snapshot
 * Public surface of the snapshot module: the store (LayerUnpacker for image/pull), image
 * mounts, chain IDs and the types. Other modules import from here only.
 */
import { SnapshotStore, type SnapshotStoreOptions } from './store.ts';
import { storeFormat } from './format.ts';

export { SnapshotStore, type SnapshotStoreOptions, type UnpackRequest } from './store.ts';
export { mountImage, umountImage, releaseUnusedLayers, overlayOptions } from './mount.ts';
export { chainId, chainIds } from '../oci/chain-id.ts';
export { storeFormat, parseFormatFile, FORMAT_FILE } from './format.ts';
export { defaultPolicy, SNAPSHOT_FORMATS } from './types.ts';
export type { SnapshotFormat, SnapshotInfo, SnapshotMeta, CheckResult, ExtractPolicy, Snapshotter, ActiveSnapshot } from './types.ts';

/** Default format for new snapshots; numbers in unpack.ts. */
export const DEFAULT_FORMAT = 'erofs' as const;

/**
 * Opens the snapshot store at root (the puller's LayerUnpacker) and sweeps dead work areas.
 * Without an explicit format: the store's recorded one, decided once (format.ts).
 */
export async function openUnpacker(root: string, opts: SnapshotStoreOptions & { notice?: (message: string) => void } = {}): Promise<SnapshotStore> {
  const { notice, ...rest } = opts;
  const format = await storeFormat(root, { explicit: opts.format, notice });
  const store = new SnapshotStore(root, { ...rest, format });
  await store.sweepWork();
  return store;
}
