/**
 * @module image/chain
 * Chain IDs (OCI image spec, config.md "Layer ChainID"): the identity of a layer *stack*,
 * chainID(L0) = diffID(L0), chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)).
 * Snapshots are keyed by them, so images sharing a base share its snapshots.
 */
import { sha256, type Digest } from '../base/digest.ts';

export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : sha256(`${prev} ${d}`));
  }
  return out;
}
