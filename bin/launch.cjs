// berth launcher: runs the bundled CLI (npm run build: dist/main.cjs, one CommonJS file),
// or the TypeScript sources through tsx when BERTH_DEV=1 (development without a build).
//
// The bundle is compiled with a V8 code cache (Node 20 has no module.enableCompileCache):
// parsing and compiling ~650 KB of JavaScript costs ~30-45 ms of CPU per invocation here,
// a cache hit ~3 ms. Measured with /usr/bin/time over 12 runs of `berth images`: 0.214 s
// CPU as ESM chunks, 0.196 s as one CJS file, 0.167 s with the cache (`node -e 0`: 0.13 s).
// A cache is bytecode berth runs as its caller, so it is never trusted blindly:
//   - root's is /var/cache/berth/v8 (0700, root-owned, checked before each use; anything
//     else: no cache); a user's is $XDG_CACHE_HOME/berth/v8 (default ~/.cache/berth/v8),
//     where that directory and berth/ must be the user's own and 0700-like, and the one
//     above them the user's or root's, writable by nobody else: only the user (or root)
//     can put bytecode there, the same trust as the user's own shell startup files. Files
//     0600 and the caller's, written to a temporary name and renamed;
//   - keyed by the SHA-256 of the bundle's bytes (never reused across builds), one file
//     per command word (each holds the functions that command compiled on its first run);
//   - the file carries the SHA-256 of its payload, checked before V8 sees it: V8 checks
//     only lengths and versions, and a flipped byte in the payload aborts the process;
//   - V8's own rejection (another node or flags) rewrites it. BERTH_V8_CACHE=0 disables it.
// This file is CommonJS (bin/package.json): an ESM entry costs ~6 ms more CPU per start.
'use strict';
const { closeSync, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, constants: FS } = require('node:fs');
const { isAscii } = require('node:buffer');
const { createHash } = require('node:crypto');
const { createRequire } = require('node:module');
const { dirname, join } = require('node:path');
const vm = require('node:vm');


function runBundle() {
  const source = readFileSync(bundle);
  const cache = cachePlan(source);
  const cached = cache ? readCache(cache) : undefined;
  // The build makes the bundle ASCII: latin1 then gives V8 a one-byte string directly.
  const text = isAscii(source) ? source.toString('latin1') : source.toString('utf8');
  const code = `(function (exports, require, module, __filename, __dirname) {${text}\n})`;
  const script = new vm.Script(code, { filename: bundle, cachedData: cached, importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER });
  if (cached !== undefined) trace(script.cachedDataRejected ? 'rejected by V8' : 'hit');
  if (cache && (cached === undefined || script.cachedDataRejected)) {
    process.once('exit', (status) => {
      if (status === 0 && !process.argv.includes('--help') && !process.argv.includes('-h')) writeCache(cache, script);
    });
  }
  const mod = { exports: {} };
  script.runInThisContext().call(mod.exports, mod.exports, createRequire(bundle), mod, bundle, dirname(bundle));
}

// BERTH_V8_CACHE_DIR moves it (tests); the same ownership checks apply there.
const EUID = process.geteuid?.() ?? -1;
function cacheDir() {
  if (process.env.BERTH_V8_CACHE_DIR) return process.env.BERTH_V8_CACHE_DIR;
  if (EUID === 0) return '/var/cache/berth/v8';
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && xdg.startsWith('/') ? xdg : process.env.HOME && process.env.HOME.startsWith('/') ? join(process.env.HOME, '.cache') : undefined;
  return base === undefined ? undefined : join(base, 'berth', 'v8');
}
const CACHE_DIR = cacheDir();
const trace = process.env.BERTH_V8_CACHE_TRACE === '1' ? (m) => process.stderr.write(`berth: v8 cache: ${m}\n`) : () => {};
const MAGIC = Buffer.from('berth-v8-cache 1\n');
const GLOBAL_WITH_VALUE = new Set(['--root', '--snapshot-format']);

/** The command word berth was called with (`run`, `ps`, …), for the cache file's name. */
function commandWord() {
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (GLOBAL_WITH_VALUE.has(a)) { i++; continue; }
    if (a.startsWith('-')) continue;
    return /^[a-z][a-z0-9-]{0,23}$/.test(a) ? a : 'other';
  }
  return 'none';
}

/**
 * Only from directories nobody but the caller can write (root: root's; a user: the cache
 * dir and its parent the user's, the one above the user's or root's); undefined: no cache.
 */
function cachePlan(source) {
  if (process.env.BERTH_V8_CACHE === '0' || EUID < 0 || CACHE_DIR === undefined) return undefined;
  try {
    mkdirSync(CACHE_DIR, { mode: 0o700, recursive: true });
    const dirs = EUID === 0 ? [dirname(CACHE_DIR), CACHE_DIR] : [dirname(dirname(CACHE_DIR)), dirname(CACHE_DIR), CACHE_DIR];
    for (const [i, d] of dirs.entries()) {
      const st = lstatSync(d);
      const owners = EUID !== 0 && i === 0 ? [EUID, 0] : [EUID];
      if (!st.isDirectory() || !owners.includes(st.uid) || (st.mode & 0o022) !== 0) {
        trace(EUID === 0 ? `off: ${d} is not a root-owned directory that only root can write` : `off: ${d} is not a directory of uid ${owners.join(' or ')} that only its owner can write`);
        return undefined;
      }
    }
  } catch (e) {
    trace(`off: ${e.message}`);
    return undefined;
  }
  const hash = createHash('sha256').update(source).digest();
  return { hash, path: `${CACHE_DIR}/${hash.toString('hex').slice(0, 32)}-${commandWord()}.bin` };
}

function readCache(plan) {
  let fd;
  try {
    fd = openSync(plan.path, FS.O_RDONLY | FS.O_NOFOLLOW);
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== EUID || (st.mode & 0o077) !== 0 || st.size > 64 << 20 || st.size < MAGIC.length + 64) {
      trace(EUID === 0 ? 'ignored: not a root-only regular file of a plausible size' : 'ignored: not a regular file of the caller, 0600, of a plausible size');
      return undefined;
    }
    const buf = Buffer.allocUnsafe(st.size);
    for (let off = 0; off < st.size;) {
      const n = readSync(fd, buf, off, st.size - off, off);
      if (n <= 0) return undefined;
      off += n;
    }
    const head = MAGIC.length;
    if (!buf.subarray(0, head).equals(MAGIC) || !buf.subarray(head, head + 32).equals(plan.hash)) {
      trace('ignored: made for another bundle');
      return undefined;
    }
    const payload = buf.subarray(head + 64);
    if (!createHash('sha256').update(payload).digest().equals(buf.subarray(head + 32, head + 64))) {
      trace('ignored: corrupt (payload digest differs)');
      return undefined;
    }
    return payload;
  } catch (e) {
    trace(e.code === 'ENOENT' ? 'miss' : `ignored: ${e.message}`);
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function writeCache(plan, script) {
  const tmp = `${plan.path}.${process.pid}.tmp`;
  try {
    const payload = script.createCachedData();
    const digest = createHash('sha256').update(payload).digest();
    writeFileSync(tmp, Buffer.concat([MAGIC, plan.hash, digest, payload]), { mode: 0o600, flag: 'wx' });
    renameSync(tmp, plan.path);
    trace(`written: ${plan.path}`);
    prune();
  } catch (e) {
    trace(`not written: ${e.message}`);
    try { rmSync(tmp, { force: true }); } catch { /* nothing to remove */ }
  }
}

// A pull is one short process whose tar parser and image writer run 20,000+ entries mostly
// before V8 has optimised them. TurboFan's inlining makes those compiles big (the writer's
// per-entry function inlines the validator and tree code: 50-100 ms on a compile thread of
// this 2-core VM, while the loop runs unoptimised), so a pull compiles without it: each hot
// function is then optimised on its own, sooner. Measured (alternating cold pulls, medians):
// the 20,000-file bench image 1.05 -> 0.94 s of CPU, 761 -> 720 ms; Debian 2.04 -> 1.91 s of
// CPU, 1.50 -> 1.45 s.
// Set before the bundle is compiled; the code cache is per command, so its flag hash matches.
if (commandWord() === 'pull') require('node:v8').setFlagsFromString('--no-turbo-inlining');

const bundle = join(__dirname, '../dist/main.cjs');
if (process.env.BERTH_DEV === '1' || !existsSync(bundle)) {
  if (process.env.BERTH_DEV !== '1') {
    process.stderr.write('berth: dist/ is missing, running from sources (run `npm run build` for speed)\n');
  }
  (async () => {
    const { register } = await import('tsx/esm/api');
    register();
    await import('../src/main.ts');
  })().catch((e) => {
    process.stderr.write(`berth: ${e?.stack ?? e}\n`);
    process.exitCode = 70;
  });
} else {
  runBundle();
}

/** At most MAX_FILES caches (one per build and command); the oldest go first. */
const MAX_FILES = 64;
function prune() {
  const files = readdirSync(CACHE_DIR).filter((f) => f.endsWith('.bin'));
  if (files.length <= MAX_FILES) return;
  const aged = files.map((f) => ({ f, t: statSync(join(CACHE_DIR, f)).mtimeMs })).sort((a, b) => a.t - b.t);
  for (const { f } of aged.slice(0, files.length - MAX_FILES)) unlinkSync(join(CACHE_DIR, f));
}
