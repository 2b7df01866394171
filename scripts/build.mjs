// Bundles the CLI with esbuild into one CommonJS file, dist/main.cjs, which bin/launch.cjs
// compiles with a V8 code cache (see bin/launch.cjs). Commands are still imported lazily: a
// bundled import() becomes a call that evaluates the command's modules on first use, so
// `berth --help` evaluates almost nothing, and V8 compiles only the functions that run.
// Why not the ESM chunks this used to write: Node 20's ESM loader costs ~10-20 ms more per
// start (resolve, link and compile of each chunk), and ESM modules cannot use a code cache.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

const outdir = new URL('../dist/', import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true });
const common = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  minifySyntax: true,
  legalComments: 'none',
  external: ['zstd-napi'],
  // The two import.meta.url users (helper path, zstd-napi) get the bundle's own URL.
  // import.meta.resolve is used on the from-sources path only (unpack-worker's tsx boot).
  define: { 'import.meta.url': '__berthModuleUrl', 'import.meta.resolve': 'undefined' },
  banner: { js: "const __berthModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
};
await build({ ...common, entryPoints: ['src/main.ts'], outfile: `${outdir}main.cjs` });
// The unpack worker (snapshot/unpack-worker.ts, big layers on hosts with 3+ cores) boots
// from a bundle of its own: main.cjs's entry would run the CLI inside the worker.
await build({ ...common, entryPoints: ['src/snapshot/unpack-worker.ts'], outfile: `${outdir}unpack-worker.cjs` });

// esbuild escapes non-ASCII in strings and regexps (charset ascii) but not in comments.
// One such character makes V8 hold the whole source as UTF-16: ~2 ms more to decode and
// ~5 ms more to compile per start. Comments are the only place left, so escape them there.
import { readFileSync, writeFileSync } from 'node:fs';
for (const out of [`${outdir}main.cjs`, `${outdir}unpack-worker.cjs`]) {
  const text = readFileSync(out, 'utf8');
  if (/[^\x00-\x7f]/.test(text)) writeFileSync(out, text.replace(/[^\x00-\x7f]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`));
}

// berth-helper (native/*.c): the one static helper for every privileged syscall (mounts,
// resolution inside a container root, exec, -u). berth installs nothing into its store:
// machines' drop-ins name dist/libexec/berth-helper of this installation. Needs a C
// compiler and the static libc (Debian: gcc, libc6-dev); without it berth cannot mount
// rootfs, so the build fails.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
const nativeDir = new URL('../native/', import.meta.url).pathname;
const sources = readdirSync(nativeDir).filter((f) => f.endsWith('.c')).sort().map((f) => nativeDir + f);
mkdirSync(`${outdir}libexec`, { recursive: true, mode: 0o755 });
execFileSync('cc', ['-static', '-O2', '-Wall', '-Wextra', '-Werror', '-D_FORTIFY_SOURCE=2', '-o', `${outdir}libexec/berth-helper`, ...sources], { stdio: 'inherit' });
