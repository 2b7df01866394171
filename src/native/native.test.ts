import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { isBerthError } from '../base/errors.ts';
import { checkHelperOwnership, execArgs, helperError, mkdirsArgs, parseHelperError } from './index.ts';

test('helper error lines: step, path, errno and reason are parsed', () => {
  const f = parseHelperError('noise\nberth-helper: fsconfig(create) /s/erofs/aa.erofs: ENOTBLK (Block device required)\n');
  assert.deepEqual(f && { step: f.step, path: f.path, errno: f.errno, reason: f.reason }, { step: 'fsconfig(create)', path: '/s/erofs/aa.erofs', errno: 'ENOTBLK', reason: 'Block device required' });
  const g = parseHelperError('berth-helper: join cgroup: openat2 /machine.slice/x: EROFS (Read-only file system)');
  assert.equal(g?.step, 'join cgroup: openat2');
  assert.equal(g?.path, '/machine.slice/x');
  const h = parseHelperError('berth-helper: setns user: EPERM (Operation not permitted)');
  assert.deepEqual([h?.step, h?.path, h?.errno], ['setns', 'user', 'EPERM']);
  assert.equal(parseHelperError('nothing here'), undefined);
});

test('helper exit classes map to berth codes; exec set-up (125) maps by errno', () => {
  const cases: Array<[number, string, string]> = [
    [3, 'berth-helper: openat2 /etc/passwd: ENOENT (No such file or directory)', 'NOT_FOUND'],
    [4, 'berth-helper: mount(overlay) /m: EPERM (Operation not permitted)', 'PERMISSION_DENIED'],
    [6, 'berth-helper: fsconfig(create) /x.erofs: ENOTBLK (Block device required; loop fallback: open /dev/loop-control: ENOENT)', 'UNSUPPORTED'],
    [7, 'berth-helper: read /etc/passwd: EINVAL (is a FIFO, not a regular file)', 'HOSTILE_LAYER'],
    [1, 'berth-helper: fsconfig(create) /g.erofs: EINVAL (Invalid argument)', 'FAILED_PRECONDITION'],
    [125, 'berth-helper: working directory /nope: ENOENT (No such file or directory)', 'NOT_FOUND'],
    [125, 'berth-helper: mkdirat /w: ELOOP (exists but is not a directory inside the root)', 'HOSTILE_LAYER'],
  ];
  for (const [status, line, code] of cases) {
    const e = helperError('ctx', status, line);
    assert.ok(isBerthError(e, code as never), `${line} → ${e.code}, want ${code}`);
    assert.ok(e.message.startsWith('ctx: '), e.message);
    assert.ok(e.message.includes(line.slice('berth-helper: '.length)));
  }
  assert.equal(helperError('c', 6, 'berth-helper: fsconfig(create) /x: ENOTBLK (x)').details.noLoop, true);
});

test('exec and mkdirs argv', () => {
  assert.deepEqual(execArgs({ leader: 4242, user: 'bob:wheel', cwd: '/w', errfd: 3 }, ['sh', '-c', 'id']),
    ['exec', '--leader', '4242', '--user', 'bob:wheel', '--cwd', '/w', '--errfd', '3', '--', 'sh', '-c', 'id']);
  assert.deepEqual(execArgs({ leader: 7 }, ['true']), ['exec', '--leader', '7', '--', 'true']);
  assert.throws(() => execArgs({ leader: 1 }, ['true']), /leader/);
  assert.throws(() => execArgs({ leader: 7 }, []), /no command/);
  assert.deepEqual(mkdirsArgs('/m/web', { uid: 524288, gid: 524288 }, ['/usr', '/w/x']), ['mkdirs', '/m/web', '524288', '524288', '/usr', '/w/x']);
  assert.throws(() => mkdirsArgs('/m', { uid: 0, gid: 0 }, ['rel']), /absolute/);
  assert.throws(() => mkdirsArgs('/m', { uid: 0, gid: 0 }, ['/a/../b']), /absolute, without/);
});

test('a helper someone else could replace is refused', () => {
  const ok = { uid: 0, mode: 0o100755 };
  checkHelperOwnership('/x/libexec/berth-helper', ok, { uid: 0, mode: 0o40755 }, 0);
  assert.throws(() => checkHelperOwnership('/x/libexec/berth-helper', { uid: 1000, mode: 0o100755 }, ok, 0), /owned by root/);
  assert.throws(() => checkHelperOwnership('/x/libexec/berth-helper', ok, { uid: 0, mode: 0o40777 }, 0), /\/x\/libexec must be/);
  checkHelperOwnership('/x', { uid: 1000, mode: 0o100777 }, ok, 1000); // not root: nothing to protect
});
