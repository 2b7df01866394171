/**
 * @module cli/lazy
 * Commander actions that import their implementation only when they run, so parsing and
 * --help load nothing else. `lazy(load, 'fn')` calls the module's export `fn` with the
 * command's arguments, its options, and the global options last.
 */
import type { Command } from 'commander';
import type { GlobalOptions } from './program.ts';

type Action = (...args: unknown[]) => Promise<void>;

export function lazy(load: () => Promise<Record<string, unknown>>, fn: string): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const mod = await load();
    const f = mod[fn] as Action | undefined;
    if (typeof f !== 'function') throw new Error(`command implementation ${fn} missing`);
    const cmd = args[args.length - 1] as Command;
    const globals = cmd.optsWithGlobals() as GlobalOptions;
    await f(...args.slice(0, -1), globals);
  };
}
