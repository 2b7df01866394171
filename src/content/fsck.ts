/**
 * @module content/fsck
 * Offline consistency check of a local store: every blob re-hashed from disk (streamed,
 * a few in parallel), index.json parsed, and the graph below every index entry walked
 * (reachable.ts). Returns findings; repairing is the caller's decision.
 */
import { readFile } from 'node:fs/promises';
import { digestAlgorithm, newHasher } from '../base/digest.ts';
import { isErrno } from '../base/fs.ts';
import type { Descriptor } from '../oci/types.ts';
import { parseIndexJSON } from './refs.ts';
import { reachableFrom, type Finding } from './reachable.ts';
import type { BlobInfo, ContentStore } from './types.ts';

export type { Finding, FindingKind } from './reachable.ts';

export interface FsckOptions {
  /** Blobs hashed at once (2–4 keeps disks busy without thrashing). Default 3. */
  concurrency?: number;
  /** Skip re-hashing blobs (only check index.json and the graph). */
  skipHash?: boolean;
}

async function hashBlob(store: ContentStore, b: BlobInfo): Promise<Finding | undefined> {
  const h = newHasher(digestAlgorithm(b.digest));
  try {
    for await (const chunk of store.openRead(b.digest)) h.update(chunk as Buffer);
  } catch (e) {
    return { kind: 'unreadable', digest: b.digest, message: `${b.digest}: ${(e as Error).message}` };
  }
  const actual = `${digestAlgorithm(b.digest)}:${h.digest('hex')}`;
  return actual === b.digest ? undefined : { kind: 'digest-mismatch', digest: b.digest, message: `blob ${b.digest} hashes to ${actual}` };
}

/** Re-hashes every committed blob with bounded parallelism. */
export async function verifyAllBlobs(store: ContentStore, concurrency = 3): Promise<Finding[]> {
  const findings: Finding[] = [];
  const it = store.walk()[Symbol.asyncIterator]();
  let next = Promise.resolve(); // serializes pulls from the shared iterator
  const take = (): Promise<IteratorResult<BlobInfo>> => {
    const r = next.then(() => it.next());
    next = r.then(() => {}, () => {});
    return r;
  };
  const worker = async (): Promise<void> => {
    for (let r = await take(); !r.done; r = await take()) {
      const f = await hashBlob(store, r.value);
      if (f) findings.push(f);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(8, concurrency)) }, worker));
  return findings.sort((a, b) => (a.digest ?? '').localeCompare(b.digest ?? ''));
}

/** Reads index.json raw so a broken file becomes a finding instead of an exception. */
async function indexEntries(store: ContentStore): Promise<{ entries: Descriptor[]; findings: Finding[] }> {
  const path = `${store.root}/index.json`;
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return { entries: [], findings: [{ kind: 'bad-json', message: `${path} is missing` }] };
    return { entries: [], findings: [{ kind: 'unreadable', message: `${path}: ${(e as Error).message}` }] };
  }
  try {
    const doc = parseIndexJSON(raw, path);
    const findings: Finding[] = [];
    const entries = doc.manifests.filter((d) => {
      const ok = typeof d === 'object' && d !== null && typeof d.digest === 'string' && typeof d.size === 'number' && typeof d.mediaType === 'string';
      if (!ok) findings.push({ kind: 'bad-json', message: `${path}: malformed entry ${JSON.stringify(d)}` });
      return ok;
    });
    return { entries, findings };
  } catch (e) {
    return { entries: [], findings: [{ kind: 'bad-json', message: (e as Error).message }] };
  }
}

/**
 * Verifies every blob's digest and every index.json entry (and the manifests, configs and
 * layers below it). 'missing-child' findings (platforms of an index never pulled) are
 * informational.
 */
export async function fsckBlobs(store: ContentStore, opts: FsckOptions = {}): Promise<Finding[]> {
  const blobFindings = opts.skipHash ? [] : await verifyAllBlobs(store, opts.concurrency ?? 3);
  const { entries, findings: indexFindings } = await indexEntries(store);
  const { findings: graphFindings } = await reachableFrom(store, entries);
  return [...blobFindings, ...indexFindings, ...graphFindings];
}
