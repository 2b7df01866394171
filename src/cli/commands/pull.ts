/**
 * @module cli/commands/pull
 * `berth pull REF`: the manager pulls into this caller's store (root's snapshot store, or
 * a user's dir snapshots unpacked inside their mapping); this renders the progress.
 */
import type { GlobalOptions } from '../program.ts';
import { createProgress } from '../progress.ts';
import { isTTY } from '../context.ts';
import { openManager } from '../manager.ts';

export interface PullFlags {
  platform?: string;
  tlsVerify?: boolean;
  authfile?: string;
  creds?: string;
  quiet?: boolean;
}

export async function pullCommand(reference: string, flags: PullFlags, g: GlobalOptions): Promise<void> {
  const m = await openManager(g);
  const progress = createProgress(process.stdout, flags.quiet ? 'quiet' : isTTY(process.stdout) ? 'tty' : 'plain');
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    const r = await m.pull({
      reference, platform: flags.platform, tlsVerify: flags.tlsVerify, authfile: flags.authfile, creds: flags.creds,
      onEvent: (e) => progress.onEvent(e), signal: ac.signal,
    });
    progress.finish();
    if (flags.quiet) process.stdout.write(`${r.digest}\n`);
    else process.stdout.write(`Digest: ${r.digest}\nStatus: pulled ${r.name}\n`);
  } finally {
    progress.finish();
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}
