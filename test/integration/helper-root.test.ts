/**
 * @module test/integration/helper-root
 * berth-helper's `mkdirs` and `read` against hostile trees on this VM's kernel: every
 * path is resolved inside ROOT (openat2 RESOLVE_IN_ROOT), so links that point at the host
 * (absolute, `../..` chains, /proc magic links) never reach it; FIFOs, devices and big
 * files are refused without blocking; nothing is created or chowned outside ROOT.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../../src/base/exec.ts';

const HELPER = new URL('../../dist/libexec/berth-helper', import.meta.url).pathname;
let base = '';
let root = '';
let outside = '';

async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) out.push(join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
  return out.sort();
}

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'berth-helper-root-'));
  root = join(base, 'root');
  outside = join(base, 'outside');
  await mkdir(join(root, 'etc'), { recursive: true });
  await mkdir(join(outside, 'dir'), { recursive: true });
  await writeFile(join(outside, 'secret'), 'host-secret\n');
  await symlink(join(outside, 'dir'), join(root, 'abs'));            // absolute link to the host
  await symlink('../../../../../../..' + outside, join(root, 'rel')); // climbing link
  await symlink('/', join(root, 'top'));
  await symlink('/proc/self/root' + outside, join(root, 'magic'));
  // a real procfs inside ROOT, as in a running container: its magic links must not be followed
  await mkdir(join(root, 'proc'));
  execFileSync('mount', ['-t', 'proc', 'proc', join(root, 'proc')]);
  await symlink('loop2', join(root, 'loop1'));
  await symlink('loop1', join(root, 'loop2'));
  await mkdir(join(root, 'real'));
  execFileSync('mkfifo', [join(root, 'etc', 'fifo')]);
  await symlink('/dev/zero', join(root, 'etc', 'zero'));
  await mkdir(join(root, 'dev'));
  execFileSync('mknod', [join(root, 'dev', 'zero'), 'c', '1', '5']);
  await symlink('/dev/null', join(root, 'etc', 'null')); // ROOT has no /dev/null: the host's is never used
  await writeFile(join(root, 'etc', 'big'), Buffer.alloc(5 << 20, 0x41));
  await writeFile(join(root, 'real', 'ok'), 'inside\n');
});
after(async () => {
  execFileSync('umount', [join(root, 'proc')]);
  await rm(base, { recursive: true, force: true });
});

test('mkdirs: links are followed inside ROOT (dangling ones too) or refused; nothing appears outside', async () => {
  const before = await tree(outside);
  const ok = await run([HELPER, 'mkdirs', root, '4242', '4243', '/top/real/a/b', '/new/x', '/abs/x', '/rel/y'], { reject: false });
  assert.equal(ok.exitCode, 0, ok.stderr);
  assert.equal(ok.stderr, '');
  // abs -> <outside>/dir and rel -> ../../..<outside> dangle inside ROOT: their targets are made there
  for (const d of ['real/a/b', 'new/x', `${outside}/dir/x`, `${outside}/y`]) assert.equal((await stat(join(root, d))).uid, 4242, d);
  assert.equal((await stat(join(root, 'real'))).uid, 0, 'existing directories are not chowned');
  for (const [p, re] of [['/magic/x', /openat2 \/magic: ELOOP/], ['/loop1/x', /openat2 \/loop1: ELOOP/], ['/etc/fifo/x', /openat2 \/etc\/fifo: ENOTDIR/], ['/a/../b', /"\.\." is not allowed/]] as const) {
    const r = await run([HELPER, 'mkdirs', root, '0', '0', p], { reject: false });
    assert.notEqual(r.exitCode, 0, p);
    assert.match(r.stderr, re, `${p}: ${r.stderr}`);
  }
  assert.deepEqual(await tree(outside), before);
});

test('read: regular files inside ROOT only, bounded, never blocking', async () => {
  const r = await run([HELPER, 'read', root, '/top/real/../real/ok', '100']);
  assert.equal(r.stdout, 'inside\n');
  const cases: Array<[string, number, RegExp]> = [
    ['/etc/fifo', 7, /read \/etc\/fifo: EINVAL \(is a FIFO, not a regular file\)/],
    ['/etc/zero', 7, /read \/etc\/zero: EINVAL \(is a character device, not a regular file\)/], // ROOT's own /dev/zero
    ['/etc/big', 7, /read \/etc\/big: EFBIG \(5242880 bytes, more than the limit of 4194304\)/],
    ['/real', 7, /is a directory/],
    ['/etc/null', 3, /openat2 \/etc\/null: ENOENT/],
    ['/abs/../secret', 3, /ENOENT/],
    [`/rel/secret`, 3, /ENOENT/],
    ['/magic/secret', 7, /ELOOP/],
    ['/loop1', 7, /ELOOP/],
  ];
  for (const [p, code, re] of cases) {
    const x = await run([HELPER, 'read', root, p, String(4 << 20)], { reject: false, timeoutMs: 5000 });
    assert.equal(x.timedOut, false, p);
    assert.equal(x.exitCode, code, `${p}: ${x.stderr}`);
    assert.match(x.stderr, re, p);
    assert.doesNotMatch(x.stdout, /host-secret/);
  }
});
