/**
 * @module image/archive/refs
 * Looking up the images an export names. Names may be given as the store keys them
 * (`docker.io/library/busybox:latest`) or as a user types them (`busybox`); both resolve.
 * A RefEntry (from store.listRefs or a caller's own resolution) is used as is.
 */
import { BerthError } from '../../base/errors.ts';
import type { RefEntry, RefStore } from '../../content/types.ts';
import type { Descriptor } from '../../oci/types.ts';
import { parseReference, type ImageReference } from '../../reference/index.ts';

export interface NamedImage {
  /** Full normalized name as stored. */
  name: string;
  ref: ImageReference;
  descriptor: Descriptor;
}

/** What an export accepts: a name, or an already-resolved ref entry. */
export type ImageSelector = string | RefEntry;

export async function lookupRefs(store: RefStore, refs: readonly ImageSelector[]): Promise<NamedImage[]> {
  if (refs.length === 0) throw new BerthError('INVALID_ARGUMENT', 'no images to export');
  const out: NamedImage[] = [];
  for (const r of refs) {
    if (typeof r !== 'string') {
      if (!out.some((o) => o.name === r.name)) out.push({ name: r.name, ref: parseReference(r.name), descriptor: r.descriptor });
      continue;
    }
    let name = r;
    let descriptor = await store.getRef(r);
    if (!descriptor) {
      name = parseReference(r).toString();
      descriptor = await store.getRef(name);
    }
    if (!descriptor) throw new BerthError('NOT_FOUND', `image ${r}: not found`, { details: { ref: r } });
    if (!out.some((o) => o.name === name)) out.push({ name, ref: parseReference(name), descriptor });
  }
  return out;
}
