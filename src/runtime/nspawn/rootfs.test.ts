import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { execArg, isPlainExecArg, mountArgs, mountArgv, rootfsDropInText, startMountArgs } from './rootfs.ts';
import { startArgv } from './seccomp-start.ts';
import { foregroundArgv } from './foreground.ts';
import { parsePrivateUsers, pickRange, RANGE_SIZE } from './userns.ts';

const plan = { helper: '/usr/lib/berth/dist/libexec/berth-helper', layers: ['/s/erofs/aa.erofs', '/s/dir/bb/fs'], target: '/var/lib/machines/web', upper: '/var/lib/machines/.berth-web/upper', work: '/var/lib/machines/.berth-web/work', idmap: { base: 524288, size: 65536 } };

test('rootfs drop-in: the installed helper mounts before start, unmounts after stop, layers bottom first', () => {
  const t = rootfsDropInText(plan, '/var/lib/berth/snapshots');
  assert.match(t, /^ExecStartPre=\/usr\/lib\/berth\/dist\/libexec\/berth-helper mount --target \/var\/lib\/machines\/web .* --idmap 524288:65536 \/s\/erofs\/aa\.erofs \/s\/dir\/bb\/fs$/m);
  assert.match(t, /^ExecStopPost=\/usr\/lib\/berth\/dist\/libexec\/berth-helper umount \/var\/lib\/machines\/web$/m);
  assert.doesNotMatch(t, /python|perl|\/var\/lib\/berth\/libexec/);
  assert.deepEqual(mountArgv({ ...plan, idmap: undefined }).includes('--idmap'), false);
});

test('rootfs drop-in with directories: the start makes them inside the root (run -d mounts only there)', () => {
  const dirs = { owner: { uid: 524288, gid: 524288 }, paths: ['/usr', '/srv/data'] };
  const t = rootfsDropInText(plan, '/var/lib/berth/snapshots', dirs);
  assert.match(t, /^ExecStartPre=\/usr\/lib\/berth\/dist\/libexec\/berth-helper mount --target \/var\/lib\/machines\/web .* --idmap 524288:65536 --owner 524288:524288 --mkdir \/usr --mkdir \/srv\/data \/s\/erofs\/aa\.erofs \/s\/dir\/bb\/fs$/m);
  assert.equal(rootfsDropInText(plan, '/var/lib/berth/snapshots', { owner: dirs.owner, paths: [] }), rootfsDropInText(plan, '/var/lib/berth/snapshots'));
  assert.ok(isPlainExecArg('/srv/data') && !isPlainExecArg('/srv/my data') && !isPlainExecArg('/a%b') && !isPlainExecArg('/$x'));
  assert.throws(() => rootfsDropInText(plan, '/var/lib/berth/snapshots', { owner: dirs.owner, paths: ['/my data'] }), /cannot be used in a unit file/);
});

test('rootfs mounted by the start: no ExecStartPre=, nspawn-start gets mount\'s arguments before its --', () => {
  const dirs = { owner: { uid: 524288, gid: 524288 }, paths: ['/usr', '/srv/data'] };
  const t = rootfsDropInText(plan, '/var/lib/berth/snapshots', dirs, true);
  assert.doesNotMatch(t, /^ExecStartPre=/m);
  assert.match(t, /^ExecStopPost=\/usr\/lib\/berth\/dist\/libexec\/berth-helper umount \/var\/lib\/machines\/web$/m, 'the stop still unmounts');
  assert.match(t, /^RequiresMountsFor=\/var\/lib\/berth\/snapshots \/var\/lib\/machines\/.berth-web\/upper$/m);
  const words = startMountArgs(plan, dirs);
  assert.deepEqual(words, mountArgs(plan, dirs).slice(1));
  const argv = startArgv({ helper: plan.helper, nspawn: '/usr/bin/systemd-nspawn', filter: '/run/berth/seccomp/web.filter', mount: words });
  assert.deepEqual(argv.slice(0, 4), [plan.helper, 'nspawn-start', '/run/berth/seccomp/web.filter', '--mount']);
  assert.deepEqual(argv.slice(-2), ['--', '/usr/bin/systemd-nspawn']);
  assert.deepEqual(argv.slice(4, -2), words);
  assert.ok(!startArgv({ helper: plan.helper, nspawn: '/usr/bin/systemd-nspawn', filter: '/f' }).includes('--mount'));
  assert.throws(() => startMountArgs(plan, { owner: dirs.owner, paths: ['/my data'] }), /cannot be used in a unit file/);
});

test('mount arguments: --mkdir options before the layers; an attached run without systemd mounts in nspawn\'s namespace', () => {
  const dirs = { owner: { uid: 524288, gid: 524288 }, paths: ['/usr', '/srv/data'] };
  const a = mountArgs(plan, dirs);
  assert.deepEqual(a.slice(0, 1), ['mount']);
  assert.deepEqual(a.slice(-4), ['--mkdir', '/srv/data', '/s/erofs/aa.erofs', '/s/dir/bb/fs']);
  assert.ok(a.includes('--owner'));
  assert.deepEqual(mountArgs(plan, { owner: dirs.owner, paths: [] }), mountArgv(plan).slice(1));
  const o = { name: 'web', plan, tty: false, stdin: false };
  const noSystemd = foregroundArgv({ ...o, dirs }, false);
  assert.deepEqual(noSystemd.slice(0, 4), [plan.helper, 'private-tmpfs', '/run/systemd/nspawn', '--mount']);
  const sep = noSystemd.indexOf('--');
  assert.deepEqual(noSystemd.slice(4, sep), a.slice(1), 'berth-helper mount\'s arguments, without the word');
  assert.equal(noSystemd[sep + 1], 'systemd-nspawn');
  assert.ok(!foregroundArgv(o, false).includes('--mount'), 'without dirs the rootfs is the host\'s');
  assert.ok(!foregroundArgv({ ...o, dirs }, true).includes('private-tmpfs'), 'with systemd: no private namespace');
});

test('paths that systemd would expand or split are refused', () => {
  for (const bad of ['/a b', '/a%n', '/a$X', '/a"b', '/a\\b', '/a\nb']) assert.throws(() => execArg(bad), /cannot be used in a unit file/);
});

test('UID ranges: deterministic, 64 Ki aligned, skip taken ones', () => {
  const a = pickRange('web', []);
  assert.equal(a.size, RANGE_SIZE);
  assert.equal(a.base % RANGE_SIZE, 0);
  assert.deepEqual(pickRange('web', []), a);
  const b = pickRange('web', [a]);
  assert.notEqual(b.base, a.base);
  assert.deepEqual(parsePrivateUsers('524288:65536'), { base: 524288, size: 65536 });
  assert.equal(parsePrivateUsers('pick'), undefined);
});
