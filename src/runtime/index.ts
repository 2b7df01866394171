/**
 * @module runtime
 * The Runtime seam and the registry the manager looks backends up in. `bwrap` registers
 * here; `nspawn` (runtime/nspawn, the root backend) is to be registered the same way once
 * its machine/ shell is moved behind the interface.
 */
export * from './runtime.ts';
import { createBwrapRuntime } from './bwrap/index.ts';
import { RuntimeRegistry } from './runtime.ts';

/** A registry holding every backend berth ships. */
export function defaultRuntimes(): RuntimeRegistry {
  return new RuntimeRegistry().register('bwrap', createBwrapRuntime);
}
