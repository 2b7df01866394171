/**
 * The launcher script itself, run for real in an unprivileged user namespace (unshare
 * --map-root-user, no newuidmap needed) with `echo` standing in for bwrap: it mounts the
 * overlay, refuses symlinks on the way to any mount target (absolute, relative, in a
 * parent component), and never parses an argument as shell code. Skipped where the kernel
 * refuses user namespaces.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../base/exec.ts';
import { LAUNCHER_EXIT, LAUNCHER_SCRIPT } from './launcher.ts';

const userns = (await run(['unshare', '--user', '--map-root-user', '--mount', 'true'], { reject: false })).exitCode === 0;

function tree(): { t: string; args: (check: string, ...cmd: string[]) => string[] } {
  const t = mkdtempSync(join(tmpdir(), 'berth-launcher-'));
  for (const d of ['lower/etc', 'upper', 'work', 'merged']) mkdirSync(join(t, d), { recursive: true });
  writeFileSync(join(t, 'launch'), LAUNCHER_SCRIPT);
  const args = (check: string, ...cmd: string[]) => ['unshare', '--user', '--map-root-user', '--mount', '--', '/bin/sh', join(t, 'launch'),
    join(t, 'lower'), join(t, 'upper'), join(t, 'work'), join(t, 'merged'), check, 'none', '-', 'none', 'none', '--', ...cmd];
  return { t, args };
}

test('a clean root: overlay mounted, the command runs with its arguments untouched', { skip: !userns && 'no user namespaces' }, async () => {
  const { t, args } = tree();
  try {
    writeFileSync(join(t, 'lower/etc/x'), 'from-lower');
    const r = await run(args('proc:dev:etc/resolv.conf', '/bin/sh', '-c', `cat ${t}/merged/etc/x; echo; printf '%s|' "$@"`, 'sh', '$(touch /tmp/pwned)', '; rm -rf ~', '*'));
    assert.equal(r.stdout, 'from-lower\n$(touch /tmp/pwned)|; rm -rf ~|*|');
  } finally {
    rmSync(t, { recursive: true, force: true });
  }
});

for (const [name, make, check] of [
  ['absolute symlink at a mount target', (t: string) => symlinkSync('/tmp', join(t, 'lower/proc')), 'proc:dev'],
  ['relative symlink climbing out', (t: string) => symlinkSync('../../../..', join(t, 'lower/dev')), 'proc:dev'],
  ['symlink in a parent of the target', (t: string) => { rmSync(join(t, 'lower/etc'), { recursive: true }); symlinkSync('/home', join(t, 'lower/etc')); }, 'etc/resolv.conf'],
  ['symlink as the target file itself', (t: string) => symlinkSync('/etc/shadow', join(t, 'lower/etc/resolv.conf')), 'etc/resolv.conf'],
  ['symlink planted in the upper dir by an earlier run', (t: string) => symlinkSync('/root', join(t, 'upper/data')), 'data/sub'],
] as const) {
  test(`refused: ${name}`, { skip: !userns && 'no user namespaces' }, async () => {
    const { t, args } = tree();
    try {
      make(t);
      const r = await run(args(check, '/bin/sh', '-c', `touch ${t}/ran`), { reject: false });
      assert.equal(r.exitCode, LAUNCHER_EXIT, r.stderr);
      assert.match(r.stderr, /in the container's root is or lies below a symbolic link; refusing/);
      assert.ok(!existsSync(join(t, 'ran')), 'the command must not run');
    } finally {
      rmSync(t, { recursive: true, force: true });
    }
  });
}

test('wrong arity is refused before anything is mounted', { skip: !userns && 'no user namespaces' }, async () => {
  const { t } = tree();
  try {
    const r = await run(['unshare', '--user', '--map-root-user', '--mount', '--', '/bin/sh', join(t, 'launch'), 'a', 'b', '--', 'true'], { reject: false });
    assert.equal(r.exitCode, LAUNCHER_EXIT);
    assert.match(r.stderr, /bad arguments/);
  } finally {
    rmSync(t, { recursive: true, force: true });
  }
});
