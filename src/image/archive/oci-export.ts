/**
 * @module image/archive/oci-export
 * Export images from the store as an OCI image layout directory.
 *
 * Decision on naming: each index.json entry's ref.name annotation is the *full* store name
 * (`docker.io/library/busybox:latest`), so images with the same tag from different
 * repositories cannot collide and a re-import restores the exact name. Tools address an
 * entry by that string: `skopeo inspect oci:DIR:docker.io/library/busybox:latest` (skopeo
 * splits at the first ':' after DIR). With { refName: 'tag' } the annotation is the bare
 * tag (`latest`), as `skopeo copy ... oci:DIR:latest` would write; two refs with one tag
 * are then INVALID_ARGUMENT. The full name is also put in io.containerd.image.name, which
 * `ctr import` uses.
 *
 * Blobs are hardlinked from the store when on the same filesystem (they are immutable by
 * contract), else copied (opts.copy forces copying); every file is complete before it
 * appears (copy to temp + rename). An existing layout at dir is extended: entries with the
 * same ref.name are replaced, everything else is kept.
 */
import { copyFile, link, rename, stat, unlink, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestAlgorithm, digestHex } from '../../base/digest.ts';
import { BerthError, fromSystemError, wrap } from '../../base/errors.ts';
import { ensureDir, fsyncDir, isErrno, tempPathFor, writeFileAtomic } from '../../base/fs.ts';
import { reachableFrom } from '../../content/reachable.ts';
import type { ContentStore } from '../../content/types.ts';
import { MT } from '../../oci/media-types.ts';
import { REF_NAME_ANNOTATION, type Descriptor, type Index } from '../../oci/types.ts';
import { lookupRefs, type ImageSelector } from './refs.ts';

export interface OCIExportOptions {
  /** ref.name annotation: the full name (default) or only the tag. */
  refName?: 'full' | 'tag';
  /** Copy blobs instead of hardlinking them. */
  copy?: boolean;
}

const CONTAINERD_NAME = 'io.containerd.image.name';

async function placeBlob(src: string, dst: string, copy: boolean): Promise<void> {
  try {
    await stat(dst);
    return; // content-addressed: present means identical
  } catch (e) {
    if (!isErrno(e, 'ENOENT')) throw fromSystemError(e);
  }
  if (!copy) {
    try {
      await link(src, dst);
      return;
    } catch (e) {
      if (isErrno(e, 'EEXIST')) return;
      if (!isErrno(e, 'EXDEV') && !isErrno(e, 'EPERM') && !isErrno(e, 'EMLINK')) throw fromSystemError(e);
    }
  }
  const tmp = tempPathFor(dst);
  try {
    await copyFile(src, tmp);
    await rename(tmp, dst);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw fromSystemError(e);
  }
}

async function readExistingIndex(dir: string): Promise<Index & Record<string, unknown>> {
  try {
    const idx = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as Index & Record<string, unknown>;
    if (idx.schemaVersion !== 2 || !Array.isArray(idx.manifests)) throw new Error('not an OCI index');
    return idx;
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return { schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] };
    throw new BerthError('CORRUPT', `${dir}/index.json: ${(e as Error).message}`, { cause: e });
  }
}

/** Writes the named images (store ref names) into an OCI layout at dir. */
export async function exportOCILayout(store: ContentStore, refs: readonly ImageSelector[], dir: string, opts: OCIExportOptions = {}): Promise<void> {
  const images = await lookupRefs(store, refs);
  const entries: Descriptor[] = [];
  const seenNames = new Set<string>();
  for (const img of images) {
    const refName = opts.refName === 'tag' ? img.ref.tag : img.name;
    if (refName === undefined) throw new BerthError('INVALID_ARGUMENT', `${img.name} has no tag to use as ref.name`);
    if (seenNames.has(refName)) throw new BerthError('INVALID_ARGUMENT', `two images would both be named "${refName}" in ${dir}; export with full names`);
    seenNames.add(refName);
    entries.push({ ...img.descriptor, annotations: { ...img.descriptor.annotations, [CONTAINERD_NAME]: img.name, [REF_NAME_ANNOTATION]: refName } });
  }

  const { reachable, findings } = await reachableFrom(store, images.map((i) => i.descriptor));
  const fatal = findings.filter((f) => f.kind !== 'missing-child');
  if (fatal.length > 0) {
    throw new BerthError('CORRUPT', `cannot export: ${fatal[0]!.message}${fatal.length > 1 ? ` (+${fatal.length - 1} more)` : ''}`, { details: { findings: fatal } });
  }

  try {
    await ensureDir(dir);
    const layoutFile = join(dir, 'oci-layout');
    try {
      await stat(layoutFile);
    } catch {
      await writeFileAtomic(layoutFile, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    }
    const algDirs = new Set<string>();
    for (const [digest] of reachable) {
      if (!(await store.has(digest))) continue; // missing child of an index: platform not pulled
      const algDir = join(dir, 'blobs', digestAlgorithm(digest));
      if (!algDirs.has(algDir)) {
        await ensureDir(algDir);
        algDirs.add(algDir);
      }
      await placeBlob(store.blobPath(digest), join(algDir, digestHex(digest)), opts.copy ?? false);
    }
    for (const d of algDirs) await fsyncDir(d);
    const index = await readExistingIndex(dir);
    const names = new Set(entries.map((e) => e.annotations![REF_NAME_ANNOTATION]));
    index.manifests = [...index.manifests.filter((m) => !names.has(m.annotations?.[REF_NAME_ANNOTATION] ?? '\0')), ...entries];
    index.mediaType ??= MT.ociIndex;
    await writeFileAtomic(join(dir, 'index.json'), `${JSON.stringify(index, null, 2)}\n`);
  } catch (e) {
    throw wrap(`exporting to ${dir}`, e);
  }
}
