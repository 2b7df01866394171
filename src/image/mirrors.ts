/**
 * @module image/mirrors
 * Registries.conf mirrors, the way containers/image uses them: for a pull, each endpoint
 * (mirrors first, the registry itself last) is asked for the manifest in turn; the first
 * that has it also serves the blobs. A mirror that is down or lacks the image is skipped;
 * the last endpoint's error is the one reported.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../base/digest.ts';
import { isBerthError } from '../base/errors.ts';
import type { ImageReference } from '../reference/index.ts';
import type { ManifestSource } from './pull.ts';

export interface Endpoint {
  registry: string;
  repository: string;
}

interface Client {
  getManifest(ref: Endpoint, reference: string): Promise<{ mediaType: string; digest: Digest; bytes: Buffer }>;
  fetchBlob(ref: Endpoint, desc: { digest: Digest; size: number }, opts?: { offset?: number; signal?: AbortSignal }): Promise<{ body: Readable; start: number }>;
}

const SKIPPABLE = ['MANIFEST_UNKNOWN', 'CONNECTION_REFUSED', 'UNKNOWN_HOST', 'TIMEOUT', 'REGISTRY_ERROR', 'UNAUTHORIZED'];

export class MirroredSource implements ManifestSource {
  private chosen: Endpoint | undefined;
  constructor(private readonly client: Client, private readonly endpoints: readonly Endpoint[]) {}

  async getManifest(ref: ImageReference, reference: string) {
    if (this.chosen) return this.client.getManifest(this.chosen, reference);
    const list = this.endpoints.length ? this.endpoints : [ref];
    let last: unknown;
    for (const [i, ep] of list.entries()) {
      try {
        const m = await this.client.getManifest(ep, reference);
        this.chosen = ep;
        return m;
      } catch (e) {
        last = e;
        if (i === list.length - 1 || !isBerthError(e) || !SKIPPABLE.includes(e.code)) throw e;
      }
    }
    throw last;
  }

  fetchBlob(ref: ImageReference, desc: { digest: Digest; size: number }, opts?: { offset?: number; signal?: AbortSignal }) {
    return this.client.fetchBlob(this.chosen ?? ref, desc, opts);
  }
}
