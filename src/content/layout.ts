/**
 * @module content/layout
 * Where things live in a local store, which is a standard OCI image layout plus two
 * berth-private working directories that OCI tools ignore:
 *
 *   <root>/oci-layout                {"imageLayoutVersion":"1.0.0"}
 *   <root>/index.json                OCI index; refs are entries annotated with ref.name
 *   <root>/blobs/<alg>/<hex>         committed, verified blobs (0644)
 *   <root>/ingest/<alg>-<hex>.partial  bytes of an ingest in progress (resumable)
 *   <root>/locks/index.lock          serializes index.json read-modify-write
 *   <root>/locks/ingest-<hex>.lock   one writer per digest, across processes
 *   <root>/locks/prune.lock          held by prune, and briefly by every lease update
 *   <root>/leases/<pid>-<rand>.json  what an operation in flight holds (lease.ts)
 *
 * Keeping all paths a function of the digest alone (not of a caller-chosen ingest ref, as
 * containerd does) is what lets a second process find and resume the first one's partial.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestAlgorithm, digestHex, type Digest } from '../base/digest.ts';
import { BerthError } from '../base/errors.ts';
import { ensureDir, isErrno, writeFileAtomic } from '../base/fs.ts';
import { MT } from '../oci/media-types.ts';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_LAYOUT_VERSION = '1.0.0';
export const INDEX_FILE = 'index.json';

export class LayoutPaths {
  constructor(readonly root: string) {}

  get blobsDir(): string {
    return join(this.root, 'blobs');
  }
  get ingestDir(): string {
    return join(this.root, 'ingest');
  }
  get locksDir(): string {
    return join(this.root, 'locks');
  }
  get indexFile(): string {
    return join(this.root, INDEX_FILE);
  }
  get indexLock(): string {
    return join(this.locksDir, 'index.lock');
  }
  algDir(alg: string): string {
    return join(this.blobsDir, alg);
  }
  blob(d: Digest): string {
    return join(this.blobsDir, digestAlgorithm(d), digestHex(d));
  }
  partial(d: Digest): string {
    return join(this.ingestDir, `${digestAlgorithm(d)}-${digestHex(d)}.partial`);
  }
  ingestLock(d: Digest): string {
    return join(this.locksDir, `ingest-${digestHex(d)}.lock`);
  }
}

export function emptyIndexJSON(): string {
  return `${JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] }, null, 2)}\n`;
}

/** Creates the directories and oci-layout file; validates an existing oci-layout. */
export async function initLayoutDirs(p: LayoutPaths): Promise<void> {
  for (const d of [p.root, p.blobsDir, p.algDir('sha256'), p.ingestDir, p.locksDir]) await ensureDir(d);
  const layoutFile = join(p.root, OCI_LAYOUT_FILE);
  let raw: string | undefined;
  try {
    raw = await readFile(layoutFile, 'utf8');
  } catch (e) {
    if (!isErrno(e, 'ENOENT')) throw e;
  }
  if (raw === undefined) {
    await writeFileAtomic(layoutFile, JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }));
    return;
  }
  let version: unknown;
  try {
    version = (JSON.parse(raw) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
  } catch (e) {
    throw new BerthError('CORRUPT', `${layoutFile}: not JSON`, { cause: e });
  }
  if (version !== OCI_LAYOUT_VERSION) {
    throw new BerthError('CORRUPT', `${layoutFile}: unsupported imageLayoutVersion ${JSON.stringify(version)}`, { details: { path: layoutFile } });
  }
}
