/**
 * @module cli/commands/machine-run
 * `berth run` and `berth create`: the manager resolves (or pulls) the image, builds the
 * neutral spec from the flags and hands it to the caller's runtime; this prints the name or
 * relays the exit status. `-d` refuses when the runtime cannot run in the background (nspawn
 * without systemd as PID 1); the foreground path works either way. `--rm` in the foreground
 * removes the container when it exits; `-d --rm` is refused.
 */
import type { GlobalOptions } from '../program.ts';
import type { RunRequestFlags } from '../../manager/flags.ts';
import { openManager } from '../manager.ts';

export type RunCliFlags = RunRequestFlags;

async function pullQuietly(ref: string, g: GlobalOptions): Promise<void> {
  const { pullCommand } = await import('./pull.ts');
  await pullCommand(ref, { quiet: true }, g);
}

export async function createCommand(ref: string, args: string[], f: RunCliFlags, g: GlobalOptions): Promise<void> {
  const m = await openManager(g);
  const { name } = await m.create({ image: ref, args, flags: f, pull: (r) => pullQuietly(r, g) });
  process.stdout.write(`${name}\n`);
}

export async function runCommand(ref: string, args: string[], f: RunCliFlags, g: GlobalOptions): Promise<void> {
  const m = await openManager(g);
  const r = await m.run({ image: ref, args, flags: f, pull: (x) => pullQuietly(x, g) });
  if (r.exitCode === undefined) process.stdout.write(`${r.name}\n`);
  else process.exitCode = r.exitCode;
}
