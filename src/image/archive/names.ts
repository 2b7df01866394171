/**
 * @module image/archive/names
 * Image names as archives carry them versus as the store keys them. The store uses full
 * normalized references (`docker.io/library/busybox:latest`); docker-archive RepoTags use
 * Docker's familiar form (`busybox:latest`); an OCI layout's ref.name is whatever the
 * writer chose, often a bare tag (`latest`).
 */
import { BerthError } from '../../base/errors.ts';
import { parseReference } from '../../reference/index.ts';

const BARE_TAG = /^[\w][\w.-]{0,127}$/;

/** Full normalized name for a user- or archive-supplied reference. */
export function normalizeName(s: string): string {
  return parseReference(s).toString();
}

/**
 * The store name for an OCI layout ref.name annotation: a bare tag is combined with the
 * repository of `name` (required then); anything else must parse as a reference.
 */
export function refNameToStoreName(annotation: string, name: string | undefined): string {
  if (BARE_TAG.test(annotation) && !annotation.includes(':')) {
    if (name === undefined) {
      throw new BerthError('INVALID_ARGUMENT', `OCI layout entry is tagged only "${annotation}": give a repository name to import it under`, {
        details: { refName: annotation },
      });
    }
    const base = parseReference(name);
    return `${base.name}:${annotation}`;
  }
  return normalizeName(annotation);
}

/** Docker's short form (`busybox:latest`) for RepoTags; undefined when the name has no tag. */
export function repoTag(storeName: string): string | undefined {
  const r = parseReference(storeName);
  if (r.tag === undefined) return undefined;
  return r.digest ? `${r.familiar.slice(0, r.familiar.indexOf('@'))}` : r.familiar;
}
