/**
 * @module test/integration/rootless-v8-cache
 * bin/berth's V8 code cache for an unprivileged user (v8-cache.test.ts covers root's):
 * $XDG_CACHE_HOME/berth/v8 (default ~/.cache/berth/v8), made 0700 and the user's own, files
 * 0600; a cache directory, or one of its two parents, that another user owns or may write
 * is not used; a cache file the user does not own is ignored. Runs berth as `nobody`
 * (uid 65534) with a home of its own below a temporary directory; needs root and the bundle.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../testhost/index.ts';

const UID = 65534;
const built = existsSync(join(repoRoot, 'dist/main.cjs'));
const skip = !built ? 'no bundle: run npm run build' : process.geteuid?.() !== 0 ? 'needs root to run berth as another user' : false;

function berthAs(home: string, env: Record<string, string> = {}): { status: number | null; stdout: string; trace: string[] } {
  const r = spawnSync(join(repoRoot, 'bin/berth'), ['--version'], {
    encoding: 'utf8', timeout: 60_000, uid: UID, gid: UID, cwd: home,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, BERTH_V8_CACHE_TRACE: '1', ...env },
  });
  return { status: r.status, stdout: r.stdout, trace: r.stderr.split('\n').filter((l) => l.startsWith('berth: v8 cache: ')).map((l) => l.slice(17)) };
}

/** A scratch dir (removed after) with the user's own HOME in it. */
function withUserHome(fn: (base: string, home: string) => void): void {
  const base = mkdtempSync(join(tmpdir(), 'berth-v8u-'));
  chmodSync(base, 0o755);
  try {
    const home = join(base, 'home');
    mkdirSync(home, { mode: 0o755 });
    chownSync(home, UID, UID);
    fn(base, home);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

const files = (d: string) => (existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.bin')) : []);

test('a user\'s v8 cache: ~/.cache/berth/v8, 0700 and 0600, the user\'s own; a hit on the second run', { skip }, () => {
  withUserHome((_base, home) => {
    const first = berthAs(home);
    assert.equal(first.status, 0, first.trace.join('; '));
    assert.deepEqual(first.trace.map((t) => t.split(':')[0]), ['miss', 'written']);
    const dir = join(home, '.cache/berth/v8');
    for (const d of [join(home, '.cache/berth'), dir]) {
      assert.equal(statSync(d).uid, UID, d);
      assert.equal(statSync(d).mode & 0o077, 0, d);
    }
    const [f] = files(dir);
    assert.equal(statSync(join(dir, f!)).uid, UID);
    assert.equal(statSync(join(dir, f!)).mode & 0o777, 0o600);
    const second = berthAs(home);
    assert.equal(second.stdout, first.stdout);
    assert.deepEqual(second.trace, ['hit']);
    // A readable file someone else owns (root here, as if planted) is ignored, and berth still answers.
    chownSync(join(dir, f!), 0, 0);
    chmodSync(join(dir, f!), 0o644);
    const planted = berthAs(home);
    assert.equal(planted.status, 0);
    assert.match(planted.trace[0] ?? '', /not a regular file of the caller/);
    // XDG_CACHE_HOME moves it; a relative one is not used (the default is).
    const xdg = join(home, 'xdg');
    const moved = berthAs(home, { XDG_CACHE_HOME: xdg });
    assert.equal(moved.status, 0);
    assert.equal(files(join(xdg, 'berth/v8')).length, 1);
  });
});

test('a user\'s v8 cache is not used below a directory another user owns or may write', { skip }, () => {
  withUserHome((base, home) => {
    // XDG_CACHE_HOME world-writable (not sticky-protected either): off.
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const r = berthAs(home, { XDG_CACHE_HOME: open });
    assert.equal(r.status, 0);
    assert.match(r.trace.join('\n'), /^off: .*open is not a directory of uid 65534 or 0/m);
    assert.deepEqual(files(join(open, 'berth/v8')), []);
    // berth/ owned by root (another user than the caller): off, even though the caller may write v8/.
    const other = join(base, 'other');
    mkdirSync(join(other, 'berth/v8'), { recursive: true, mode: 0o755 });
    chmodSync(join(other, 'berth'), 0o755);
    chownSync(join(other, 'berth/v8'), UID, UID);
    chmodSync(join(other, 'berth/v8'), 0o700);
    const r2 = berthAs(home, { XDG_CACHE_HOME: other });
    assert.equal(r2.status, 0);
    assert.match(r2.trace.join('\n'), /^off: .*other\/berth is not a directory of uid 65534 /m);
    assert.deepEqual(files(join(other, 'berth/v8')), []);
  });
});
