/**
 * @module main
 * Wiring only: build the command tree, run it, and turn any error into one line on stderr
 * and its documented exit status. Command implementations are imported lazily so that
 * `berth --help` loads nothing but the argument parser.
 */
import { buildProgram } from './cli/program.ts';
import { EXIT_CODES, isBerthError } from './base/errors.ts';
import { redactText } from './base/redact.ts';

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (isBerthError(e)) {
      // messages are built redacted; this is the last net for signed URLs and tokens
      process.stderr.write(`berth: ${redactText(e.message)}\n`);
      if ((process.env.BERTH_DEBUG || process.argv.includes('--debug')) && e.cause) process.stderr.write(`${redactText(String((e.cause as Error).stack ?? e.cause))}\n`);
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

await main();
