/**
 * @module main
 * Wiring only: build the command tree, run it, and turn any error into one line on stderr
 * and its documented exit status. Command implementations are imported lazily so that
 * `berth --help` loads nothing but the argument parser.
 */
import { buildProgram } from './cli/program.ts';
import { EXIT_CODES, isBerthError } from './base/errors.ts';
import { redactText } from './base/redact.ts';

/** The error's stack, then each cause's ("caused by: …"), as --debug prints them. */
export function causeChain(e: unknown): string {
  const out: string[] = [];
  const seen = new Set<unknown>();
  for (let c: unknown = e; c !== undefined && c !== null && !seen.has(c) && out.length < 8; c = (c as { cause?: unknown }).cause) {
    seen.add(c);
    const text = c instanceof Error ? (c.stack ?? `${c.name}: ${c.message}`) : String(c);
    const details = (c as { details?: Record<string, unknown> }).details;
    const extra = details && Object.keys(details).length ? `\n  details: ${JSON.stringify(details, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}` : '';
    out.push(`${out.length ? 'caused by: ' : ''}${text}${extra}`);
  }
  return `${out.join('\n')}\n`;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    // --debug (or BERTH_DEBUG=1): the cause chain and stack after the one-line message.
    const debug = Boolean(process.env.BERTH_DEBUG) || program.opts().debug === true;
    if (isBerthError(e)) {
      // messages are built redacted; this is the last net for signed URLs and tokens
      process.stderr.write(`berth: ${redactText(e.message)}\n`);
      if (debug) process.stderr.write(redactText(causeChain(e)));
      process.exitCode = EXIT_CODES[e.code];
      return;
    }
    const err = e as { code?: string; exitCode?: number; message?: string };
    if (typeof err.code === 'string' && err.code.startsWith('commander.')) {
      // --help and --version succeed; every other parser complaint is a usage error (2).
      const ok = ['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(err.code);
      process.exitCode = ok ? 0 : 2;
      return;
    }
    process.stderr.write(`berth: internal error: ${redactText((e as Error)?.stack ?? String(e))}\n`);
    process.exitCode = EXIT_CODES.INTERNAL;
  }
}

// Not a top-level await: the bundle is CommonJS (scripts/build.mjs); main() catches everything.
void main();
