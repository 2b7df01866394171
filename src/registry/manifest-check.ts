/**
 * @module registry/manifest-check
 * Decides what a fetched manifest is before anyone parses it: the media type from
 * Content-Type, or from the body's `mediaType` when a registry sends a generic type
 * (some answer application/json or text/plain). Only OCI index/manifest and Docker
 * schema-2 list/manifest are accepted; schema 1 and anything else are UNSUPPORTED. Also
 * reads bodies with a size cap, because a manifest is small and a registry can be hostile.
 */
import type { Readable } from 'node:stream';
import { BerthError } from '../base/errors.ts';
import { MT } from '../oci/media-types.ts';

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

const SUPPORTED = new Set<string>([MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest]);
const GENERIC = new Set(['', 'application/json', 'text/plain', 'application/octet-stream']);

export function checkManifestType(contentType: string | undefined, bytes: Buffer, what: string): string {
  let mt = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  let body: { mediaType?: unknown; schemaVersion?: unknown; manifests?: unknown } | undefined;
  try {
    body = JSON.parse(bytes.toString('utf8')) as typeof body;
  } catch {
    body = undefined;
  }
  if (GENERIC.has(mt) && body && typeof body === 'object') {
    if (typeof body.mediaType === 'string') mt = body.mediaType;
    else if (body.schemaVersion === 2) mt = Array.isArray(body.manifests) ? MT.ociIndex : MT.ociManifest;
    else if (body.schemaVersion === 1) mt = MT.dockerSchema1;
  }
  if (mt === MT.dockerSchema1 || mt === MT.dockerSchema1Signed) {
    throw new BerthError('UNSUPPORTED', `manifest ${what} uses Docker schema 1 (${mt}), which berth does not support; re-push the image with a current tool`, {
      details: { mediaType: mt },
    });
  }
  if (!SUPPORTED.has(mt)) {
    throw new BerthError('UNSUPPORTED', `manifest ${what} has unsupported media type "${mt || '(none)'}"`, { details: { mediaType: mt } });
  }
  if (!body || typeof body !== 'object') {
    throw new BerthError('REGISTRY_ERROR', `manifest ${what} is not valid JSON`, { details: { mediaType: mt } });
  }
  return mt;
}

/** Reads a whole body, failing past limit (or truncating, for error bodies we only inspect). */
export async function readLimited(body: Readable, limit: number, what: string, truncate = false): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) {
      body.destroy();
      if (truncate) break;
      throw new BerthError('REGISTRY_ERROR', `${what} is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
