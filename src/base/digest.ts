/**
 * @module base/digest
 * Content digests as the OCI image spec defines them (`algorithm:encoded`). Only sha256
 * and sha512 are accepted; the encoded part is checked for length and lowercase hex so a
 * digest can be used as a file name without further escaping.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { BerthError } from './errors.ts';

export type Digest = string & { readonly __digest: unique symbol };

const LENGTHS: Record<string, number> = { sha256: 64, sha512: 128 };

export function parseDigest(s: string): Digest {
  const i = s.indexOf(':');
  const alg = i > 0 ? s.slice(0, i) : '';
  const hex = s.slice(i + 1);
  const want = LENGTHS[alg];
  if (want === undefined || hex.length !== want || !/^[0-9a-f]+$/.test(hex)) {
    throw new BerthError('INVALID_ARGUMENT', `invalid digest "${s}" (want sha256:<64 lowercase hex>)`);
  }
  return s as Digest;
}

export function isDigest(s: string): s is Digest {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

export function digestAlgorithm(d: Digest): string {
  return d.slice(0, d.indexOf(':'));
}

export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

export function sha256(data: string | Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

export function newHasher(alg: string = 'sha256'): Hash {
  return createHash(alg);
}

/**
 * A pass-through stream that hashes and counts what flows through it. `digest()` is valid
 * after 'end' (or 'finish').
 */
export class DigestStream extends Transform {
  private readonly hash: Hash;
  private readonly alg: string;
  bytes = 0;
  private result: Digest | undefined;

  constructor(alg: string = 'sha256', initial?: Hash) {
    super();
    this.alg = alg;
    this.hash = initial ?? createHash(alg);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  digest(): Digest {
    this.result ??= `${this.alg}:${this.hash.digest('hex')}` as Digest;
    return this.result;
  }
}
