// Bundles the CLI with esbuild: one small entry chunk (argument parsing only) plus one
// chunk per lazily imported command, so `berth --help` loads almost nothing.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

const outdir = new URL('../dist/', import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { main: 'src/main.ts' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  minifySyntax: true,
  legalComments: 'none',
  external: ['zstd-napi'],
  banner: { js: "import { createRequire as __berthCreateRequire } from 'node:module'; const require = __berthCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});

// berth-setuser: a static helper bound into containers to switch to the image's or -u's
// user with Docker's meaning (src/runtime/nspawn/translate.ts). Needs a C compiler and the
// static libc (Debian: gcc, libc6-dev); without them berth still works, with plain user
// names only.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
mkdirSync(`${outdir}libexec`, { recursive: true });
try {
  execFileSync('cc', ['-static', '-O2', '-Wall', '-o', `${outdir}libexec/berth-setuser`, new URL('../native/berth-setuser.c', import.meta.url).pathname], { stdio: 'inherit' });
} catch (e) {
  process.stderr.write(`build: berth-setuser not built (${e.message.split('\n')[0]}); -u USER:GROUP and numeric users will be refused\n`);
}
