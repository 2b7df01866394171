/**
 * bin/berth's V8 code cache for the bundle: written once per bundle and command, used
 * after, and never trusted when it could be wrong or someone else's: a flipped payload
 * byte (which would abort V8), a cache of another bundle, a truncated file, a file or
 * directory others can write. Each case checks that berth still runs and answers.
 * Needs the bundle (npm run build) and root (the cache is root-only).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../testhost/index.ts';

const built = existsSync(join(repoRoot, 'dist/main.cjs'));
const skip = !built ? 'no bundle: run npm run build' : process.geteuid?.() !== 0 ? 'the cache is root-only' : false;

function berth(dir: string, args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; trace: string[] } {
  const r = spawnSync(join(repoRoot, 'bin/berth'), args, {
    encoding: 'utf8', timeout: 60_000,
    env: { ...process.env, BERTH_V8_CACHE_DIR: dir, BERTH_V8_CACHE_TRACE: '1', BERTH_DEV: '', ...env },
  });
  const trace = r.stderr.split('\n').filter((l) => l.startsWith('berth: v8 cache: ')).map((l) => l.slice('berth: v8 cache: '.length));
  return { status: r.status, stdout: r.stdout, trace };
}

function cacheFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.bin')).sort() : [];
}

test('v8 cache: written 0600 in a 0700 dir on the first run, a hit after, one file per command', { skip }, () => {
  const base = mkdtempSync(join(tmpdir(), 'berth-v8-'));
  const dir = join(base, 'c');
  try {
    const first = berth(dir, ['--version']);
    assert.equal(first.status, 0);
    assert.deepEqual(first.trace.map((t) => t.split(':')[0]), ['miss', 'written']);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const [file] = cacheFiles(dir);
    assert.match(file!, /^[0-9a-f]{32}-none\.bin$/);
    assert.equal(statSync(join(dir, file!)).mode & 0o777, 0o600);
    const second = berth(dir, ['--version']);
    assert.equal(second.stdout, first.stdout);
    assert.deepEqual(second.trace, ['hit']);
    berth(dir, ['--root', join(base, 'store'), 'images']);
    assert.deepEqual(cacheFiles(dir).map((f) => f.replace(/^[0-9a-f]+-/, '')), ['images.bin', 'none.bin'], '--root VALUE is not the command word');
    // a failed command and --help write nothing
    const bad = berth(dir, ['no-such-command']);
    assert.equal(bad.status, 2);
    berth(dir, ['ps', '--help']);
    assert.deepEqual(cacheFiles(dir).map((f) => f.replace(/^[0-9a-f]+-/, '')), ['images.bin', 'none.bin']);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('v8 cache: a corrupt, truncated, foreign or loosely owned cache is ignored and replaced; berth still answers', { skip }, () => {
  const base = mkdtempSync(join(tmpdir(), 'berth-v8-'));
  const dir = join(base, 'c');
  try {
    const want = berth(dir, ['--version']).stdout;
    const [name] = cacheFiles(dir);
    const path = join(dir, name!);
    const good = readFileSync(path);
    const cases: Array<[string, () => void, RegExp]> = [
      ['flipped payload bytes', () => {
        const b = Buffer.from(good);
        for (let i = 200; i < b.length; i += 997) b[i]! ^= 0x5a;
        writeFileSync(path, b, { mode: 0o600 });
      }, /corrupt/],
      ['truncated', () => writeFileSync(path, good.subarray(0, good.length >> 1), { mode: 0o600 }), /corrupt/],
      ['only a header', () => writeFileSync(path, good.subarray(0, 20), { mode: 0o600 }), /plausible size/],
      ['another bundle', () => {
        const b = Buffer.from(good);
        b[b.indexOf(0x0a) + 1]! ^= 1; // first byte of the bundle hash
        writeFileSync(path, b, { mode: 0o600 });
      }, /another bundle/],
      ['group-readable and world-writable', () => { writeFileSync(path, good); chmodSync(path, 0o666); }, /root-only regular file/],
      ['a directory in its place', () => { rmSync(path); mkdirSync(path); }, /root-only regular file|EISDIR/],
      ['a symlink to a file root owns', () => { rmSync(path, { recursive: true, force: true }); symlinkSync(join(base, 'victim'), path); }, /ELOOP/],
    ];
    writeFileSync(join(base, 'victim'), good, { mode: 0o600 });
    for (const [what, spoil, why] of cases) {
      spoil();
      const r = berth(dir, ['--version']);
      assert.equal(r.status, 0, what);
      assert.equal(r.stdout, want, what);
      assert.match(r.trace[0] ?? '', why, `${what}: ${r.trace.join('; ')}`);
      if (statSync(path).isDirectory()) {
        rmSync(path, { recursive: true });
        continue;
      }
      assert.equal(r.trace.at(-1)?.startsWith('written'), true, `${what}: replaced (${r.trace.join('; ')})`);
      assert.equal(lstatSync(path).isFile(), true, `${what}: a regular file now`);
      assert.equal(statSync(path).mode & 0o777, 0o600, what);
      assert.deepEqual(berth(dir, ['--version']).trace, ['hit'], `${what}: the replacement is used`);
    }
    assert.ok(readFileSync(join(base, 'victim')).equals(good), 'the symlink was replaced, its target never written');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('v8 cache: a directory others can write, or whose parent others can write, is not used at all', { skip }, () => {
  const base = mkdtempSync(join(tmpdir(), 'berth-v8-'));
  try {
    const open = join(base, 'open');
    mkdirSync(open, { mode: 0o700 });
    chmodSync(open, 0o777);
    const r = berth(open, ['--version']);
    assert.equal(r.status, 0);
    assert.match(r.trace.join('\n'), /^off: .*open is not a root-owned directory/);
    assert.deepEqual(cacheFiles(open), []);
    const parent = join(base, 'p');
    mkdirSync(parent, { mode: 0o777 });
    chmodSync(parent, 0o777);
    const r2 = berth(join(parent, 'c'), ['--version']);
    assert.equal(r2.status, 0);
    assert.match(r2.trace.join('\n'), /^off: /);
    assert.deepEqual(cacheFiles(join(parent, 'c')), []);
    // a symlinked cache directory (to a root-owned 0700 one) is not followed
    const real = join(base, 'real');
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, join(base, 'linked'));
    const r3 = berth(join(base, 'linked'), ['--version']);
    assert.equal(r3.status, 0);
    assert.match(r3.trace.join('\n'), /^off: .*linked is not a root-owned directory/);
    assert.deepEqual(cacheFiles(real), []);
    // hostile command words never name a file outside the directory
    const words = join(base, 'words');
    berth(words, ['../../../etc/x']);
    berth(words, ['--root', join(base, 'store'), 'IMAGES']);
    assert.ok(cacheFiles(words).every((f) => /^[0-9a-f]{32}-[a-z][a-z0-9-]*\.bin$/.test(f)), cacheFiles(words).join(' '));
    // BERTH_V8_CACHE=0: neither read nor written
    const off = join(base, 'off');
    assert.deepEqual(berth(off, ['--version'], { BERTH_V8_CACHE: '0' }).trace, []);
    assert.equal(existsSync(off), false);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
