/**
 * @module content/refs
 * Refs in index.json: entries whose annotation org.opencontainers.image.ref.name is the
 * name. Every change is a read-modify-write under locks/index.lock, written atomically,
 * and preserves whatever else other tools put there (top-level fields, entries without a
 * ref name, other annotations). The lock is reentrant within one async call chain of one
 * store (AsyncLocalStorage), so setRef inside withIndexLock does not deadlock.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFile, stat } from 'node:fs/promises';
import { BerthError, fromSystemError } from '../base/errors.ts';
import { isErrno, writeFileAtomic } from '../base/fs.ts';
import { withLock } from '../base/lock.ts';
import { MT } from '../oci/media-types.ts';
import { REF_NAME_ANNOTATION, type Descriptor, type Index } from '../oci/types.ts';
import { emptyIndexJSON, type LayoutPaths } from './layout.ts';
import type { RefEntry, RefStore } from './types.ts';

/** index.json as other tools may have written it: extra fields survive a rewrite. */
export type IndexDoc = Index & Record<string, unknown>;

/** Parses index.json text; CORRUPT when it is not an OCI index. */
export function parseIndexJSON(raw: string, path: string): IndexDoc {
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (e) {
    throw new BerthError('CORRUPT', `${path}: not valid JSON`, { cause: e, details: { path } });
  }
  const d = doc as Partial<Index>;
  if (typeof doc !== 'object' || doc === null || d.schemaVersion !== 2 || !Array.isArray(d.manifests)) {
    throw new BerthError('CORRUPT', `${path}: not an OCI index (want schemaVersion 2 and a manifests array)`, { details: { path } });
  }
  return doc as IndexDoc;
}

/** Strips the ref.name annotation (and an emptied annotations object). */
function plainDescriptor(d: Descriptor): Descriptor {
  if (!d.annotations || !(REF_NAME_ANNOTATION in d.annotations)) return d;
  const { [REF_NAME_ANNOTATION]: _name, ...rest } = d.annotations;
  const out: Descriptor = { ...d, annotations: rest };
  if (Object.keys(rest).length === 0) delete out.annotations;
  return out;
}

export class IndexRefs implements RefStore {
  private readonly inLock = new AsyncLocalStorage<boolean>();
  /** Serializes this store's own read-modify-writes (e.g. Promise.all of setRefs inside withIndexLock). */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly p: LayoutPaths) {}

  async readIndex(): Promise<IndexDoc> {
    let raw: string;
    try {
      raw = await readFile(this.p.indexFile, 'utf8');
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return parseIndexJSON(emptyIndexJSON(), this.p.indexFile);
      throw fromSystemError(e);
    }
    return parseIndexJSON(raw, this.p.indexFile);
  }

  async writeIndex(doc: IndexDoc): Promise<void> {
    doc.mediaType ??= MT.ociIndex;
    await writeFileAtomic(this.p.indexFile, `${JSON.stringify(doc, null, 2)}\n`);
  }

  withIndexLock<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inLock.getStore()) return fn();
    return withLock(this.p.indexLock, () => this.inLock.run(true, fn));
  }

  private mutate<T>(fn: () => Promise<T>): Promise<T> {
    return this.withIndexLock(() => {
      const run = this.tail.then(fn, fn);
      this.tail = run.catch(() => {});
      return run;
    });
  }

  async listRefs(): Promise<RefEntry[]> {
    const doc = await this.readIndex();
    const out: RefEntry[] = [];
    for (const d of doc.manifests) {
      const name = d.annotations?.[REF_NAME_ANNOTATION];
      if (name !== undefined) out.push({ name, descriptor: plainDescriptor(d) });
    }
    return out;
  }

  async getRef(name: string): Promise<Descriptor | undefined> {
    const doc = await this.readIndex();
    const d = doc.manifests.find((m) => m.annotations?.[REF_NAME_ANNOTATION] === name);
    return d && plainDescriptor(d);
  }

  async setRef(name: string, descriptor: Descriptor): Promise<void> {
    if (name === '') throw new BerthError('INVALID_ARGUMENT', 'empty ref name');
    const entry: Descriptor = { ...descriptor, annotations: { ...descriptor.annotations, [REF_NAME_ANNOTATION]: name } };
    await this.mutate(async () => {
      const doc = await this.readIndex();
      const i = doc.manifests.findIndex((m) => m.annotations?.[REF_NAME_ANNOTATION] === name);
      const rest = doc.manifests.filter((m, j) => j === i || m.annotations?.[REF_NAME_ANNOTATION] !== name);
      if (i === -1) rest.push(entry);
      else rest[rest.indexOf(doc.manifests[i]!)] = entry;
      doc.manifests = rest;
      await this.writeIndex(doc);
    });
  }

  async deleteRef(name: string): Promise<boolean> {
    return this.mutate(async () => {
      const doc = await this.readIndex();
      const rest = doc.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== name);
      if (rest.length === doc.manifests.length) return false;
      doc.manifests = rest;
      await this.writeIndex(doc);
      return true;
    });
  }

  /**
   * Creates an empty index.json when there is none (under the lock: no lost update).
   * Every command opens the store, so an existing index (written by rename: it is whole
   * or absent) is seen without the lock: taking it costs a lock file, and its
   * AsyncLocalStorage.run() turns on promise hooks for the rest of the process (~5-10%
   * of a `run -d`'s CPU in a profile).
   */
  async ensureIndex(): Promise<void> {
    if (await stat(this.p.indexFile).then((s) => s.isFile(), () => false)) return;
    // the lock itself, not withIndexLock: nothing inside re-enters it, and its
    // AsyncLocalStorage.run() would turn on promise hooks for the whole of a first pull
    await withLock(this.p.indexLock, async () => {
      try {
        await readFile(this.p.indexFile);
      } catch (e) {
        if (!isErrno(e, 'ENOENT')) throw fromSystemError(e);
        await writeFileAtomic(this.p.indexFile, emptyIndexJSON());
      }
    });
  }
}
