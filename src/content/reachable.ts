/**
 * @module content/reachable
 * Walks image graphs in a store: index → manifests → config + layers. Shared by fsck
 * (report what is missing or unreadable) and gc (what must be kept).
 *
 * A descriptor's blob is opened only when its media type says it is an index or a
 * manifest; everything else (configs, layers, unknown artifacts) is only checked for
 * existence and size. A manifest's `subject` is not followed: a referrer does not keep
 * its subject alive. An index naming platforms berth never pulled has missing children;
 * that is normal, so missing children of an *index* are reported as kind 'missing-child'
 * (informational), while a missing config or layer of a present manifest is 'missing-blob'.
 */
import type { Digest } from '../base/digest.ts';
import { isBerthError } from '../base/errors.ts';
import { isIndexType, isManifestType } from '../oci/media-types.ts';
import type { Descriptor, Index, Manifest } from '../oci/types.ts';
import type { Provider } from './types.ts';

export type FindingKind =
  | 'digest-mismatch' // blob bytes do not hash to its name
  | 'size-mismatch' // descriptor size differs from the blob's
  | 'missing-blob' // a referenced blob is absent
  | 'missing-child' // a platform manifest of an index is absent (usually: not pulled)
  | 'bad-json' // index.json, a manifest or an index is not valid JSON / not the expected shape
  | 'unreadable'; // I/O error reading a blob

export interface Finding {
  kind: FindingKind;
  digest?: Digest;
  /** The ref (index.json ref.name) under which the problem was found, when known. */
  ref?: string;
  /** The descriptor that referenced the problem blob, when there is one. */
  parent?: Digest;
  message: string;
}

export interface Reachability {
  /** Every digest referenced from the roots (present or not), with its descriptor. */
  reachable: Map<Digest, Descriptor>;
  findings: Finding[];
}

export interface RootDescriptor extends Descriptor {
  /** Optional label carried into findings (e.g. the ref name). */
  readonly refName?: string;
}

/** Walks the graph below `roots`, reporting missing blobs, bad JSON and size mismatches. */
export async function reachableFrom(store: Provider, roots: readonly Descriptor[]): Promise<Reachability> {
  const reachable = new Map<Digest, Descriptor>();
  const findings: Finding[] = [];

  async function visit(d: Descriptor, ref: string | undefined, parent: Descriptor | undefined): Promise<void> {
    if (reachable.has(d.digest)) return;
    reachable.set(d.digest, d);
    let info;
    try {
      info = await store.info(d.digest);
    } catch (e) {
      findings.push({ kind: 'unreadable', digest: d.digest, ref, parent: parent?.digest, message: `${d.digest}: ${(e as Error).message}` });
      return;
    }
    if (!info) {
      const childOfIndex = parent !== undefined && isIndexType(parent.mediaType);
      findings.push({
        kind: childOfIndex ? 'missing-child' : 'missing-blob',
        digest: d.digest,
        ref,
        parent: parent?.digest,
        message: `${d.mediaType} ${d.digest} is missing${parent ? ` (referenced by ${parent.digest})` : ''}`,
      });
      return;
    }
    if (info.size !== d.size) {
      findings.push({ kind: 'size-mismatch', digest: d.digest, ref, parent: parent?.digest, message: `${d.digest}: descriptor says ${d.size} bytes, blob has ${info.size}` });
    }
    if (!isIndexType(d.mediaType) && !isManifestType(d.mediaType)) return;
    let doc: Partial<Index & Manifest>;
    try {
      doc = await store.readJSON<Partial<Index & Manifest>>(d.digest);
    } catch (e) {
      const kind = isBerthError(e, 'CORRUPT') ? 'bad-json' : 'unreadable';
      findings.push({ kind, digest: d.digest, ref, parent: parent?.digest, message: `${d.digest}: ${(e as Error).message}` });
      return;
    }
    const children: Descriptor[] = [];
    if (isIndexType(d.mediaType)) {
      if (!Array.isArray(doc.manifests)) {
        findings.push({ kind: 'bad-json', digest: d.digest, ref, message: `${d.digest}: index without a manifests array` });
        return;
      }
      children.push(...doc.manifests);
    } else {
      if (!doc.config || !Array.isArray(doc.layers)) {
        findings.push({ kind: 'bad-json', digest: d.digest, ref, message: `${d.digest}: manifest without config or layers` });
        return;
      }
      children.push(doc.config, ...doc.layers);
    }
    for (const c of children) {
      if (typeof c?.digest !== 'string') {
        findings.push({ kind: 'bad-json', digest: d.digest, ref, message: `${d.digest}: child descriptor without a digest` });
        continue;
      }
      await visit(c, ref, d);
    }
  }

  for (const r of roots) await visit(r, (r as RootDescriptor).refName ?? r.annotations?.['org.opencontainers.image.ref.name'], undefined);
  return { reachable, findings };
}
