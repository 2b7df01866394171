/**
 * @module cli/commands/pull
 * `berth pull REF`: wires the registry client (credentials, insecure hosts, mirrors), the
 * store and the unpacker into image/pull, and renders progress.
 */
import type { GlobalOptions } from '../program.ts';
import { parseReference } from '../../reference/index.ts';
import { parsePlatform } from '../../image/platform.ts';
import { pullImage } from '../../image/pull.ts';
import { createProgress } from '../progress.ts';
import { isTTY } from '../context.ts';
import { openServices, registryFor } from '../services.ts';

export interface PullFlags {
  platform?: string;
  tlsVerify?: boolean;
  authfile?: string;
  creds?: string;
  quiet?: boolean;
}

export async function pullCommand(reference: string, flags: PullFlags, g: GlobalOptions): Promise<void> {
  const ref = parseReference(reference);
  const platform = flags.platform ? parsePlatform(flags.platform) : undefined;
  const svc = await openServices(g);
  const registry = await registryFor(ref, flags);
  const progress = createProgress(process.stdout, flags.quiet ? 'quiet' : isTTY(process.stdout) ? 'tty' : 'plain');
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    const { Leases } = await import('../../content/index.ts');
    const leases = new Leases(svc.root);
    const r = await pullImage(ref, { registry, store: svc.store, unpacker: svc.unpacker, leases }, { platform, onEvent: (e) => progress.onEvent(e), signal: ac.signal });
    progress.finish();
    if (flags.quiet) process.stdout.write(`${r.digest}\n`);
    else process.stdout.write(`Digest: ${r.digest}\nStatus: pulled ${r.name}\n`);
  } finally {
    progress.finish();
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}
