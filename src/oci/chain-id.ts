/**
 * @module oci/chain-id
 * Chain IDs as the OCI image spec defines them: chainID(1) = diffID(1) and
 * chainID(n) = sha256(chainID(n-1) + " " + diffID(n)).
 */
import { sha256, type Digest } from '../base/digest.ts';
import { BerthError } from '../base/errors.ts';

/** Chain ID of the top of a layer stack (diffIds bottom first). */
export function chainId(diffIds: readonly Digest[]): Digest {
  const all = chainIds(diffIds);
  const top = all[all.length - 1];
  if (top === undefined) throw new BerthError('INVALID_ARGUMENT', 'chainId: no layers');
  return top;
}

/** Chain IDs of every prefix of the stack: result[i] identifies layers 0..i. */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  let prev: Digest | undefined;
  for (const d of diffIds) {
    prev = prev === undefined ? d : sha256(`${prev} ${d}`);
    out.push(prev);
  }
  return out;
}
