/**
 * @module snapshot/layout
 * Where snapshots live under the snapshot root (e.g. /var/lib/berth/snapshots):
 *
 *   dir/<hex>/fs/          'dir' snapshot: the lowerdir itself
 *   dir/<hex>/meta.json    written before the rename, so a visible dir/<hex> is complete
 *   erofs/<hex>.erofs      'erofs' snapshot: one image; the rename into place is the commit
 *   erofs/<hex>.json       its meta (written before the image is renamed into place)
 *   mnt/<hex>/             mount point of an EROFS image while an overlay uses it
 *   work/<hex>.<rand>/     private work areas (never visible as snapshots; swept on open)
 *   locks/<hex>.lock       per-chain-ID lock: two pulls unpack a layer once
 *
 * Overlay lowerdir paths are given relative to the root (mount runs with cwd=root), so
 * each lower costs ~70 bytes of the one-page mount option string (see mount.ts).
 */
import { join } from 'node:path';
import { digestHex, type Digest } from '../base/digest.ts';
import type { SnapshotFormat } from './types.ts';

export class SnapshotLayout {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }
  dirSnapshot(id: Digest): string {
    return join(this.root, 'dir', digestHex(id));
  }
  dirLower(id: Digest): string {
    return join(this.dirSnapshot(id), 'fs');
  }
  erofsImage(id: Digest): string {
    return join(this.root, 'erofs', `${digestHex(id)}.erofs`);
  }
  erofsMeta(id: Digest): string {
    return join(this.root, 'erofs', `${digestHex(id)}.json`);
  }
  mountPoint(id: Digest): string {
    return join(this.root, 'mnt', digestHex(id));
  }
  work(): string {
    return join(this.root, 'work');
  }
  lock(id: Digest): string {
    return join(this.root, 'locks', `${digestHex(id)}.lock`);
  }
  formatDir(f: SnapshotFormat): string {
    return join(this.root, f);
  }
}
