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
