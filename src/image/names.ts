/**
 * @module image/names
 * How images are named in the store's index.json. The ref name (annotation
 * org.opencontainers.image.ref.name) is the full normalized reference, e.g.
 * `docker.io/library/busybox:latest`, so `skopeo copy oci:/var/lib/berth:docker.io/library/busybox:latest`
 * finds it. A digest-only pull is named `name@sha256:…`. When the image came through an index,
 * the index digest is kept in an annotation so `berth pull name@<index digest>` is satisfied
 * locally and `berth image inspect` can show it.
 */
import type { ImageReference } from '../reference/index.ts';

export const SOURCE_INDEX_ANNOTATION = 'io.berth.image.index.digest';

export function refNameFor(ref: ImageReference): string {
  if (ref.tag) return `${ref.name}:${ref.tag}`;
  return `${ref.name}@${ref.digest}`;
}

/** Splits a stored ref name back into repository and tag/digest for tables. */
export function splitRefName(name: string): { repository: string; tag: string } {
  const at = name.indexOf('@');
  if (at >= 0) return { repository: name.slice(0, at), tag: '<none>' };
  const slash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  if (colon > slash) return { repository: name.slice(0, colon), tag: name.slice(colon + 1) };
  return { repository: name, tag: '<none>' };
}
