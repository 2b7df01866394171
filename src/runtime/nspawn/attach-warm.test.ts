import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ownProcsFile } from './attach-warm.ts';

test('own cgroup.procs: the cgroup2 line under the mount; nothing outside it or without cgroup2', () => {
  const hybrid = '9:name=systemd:/user.slice/session-3.scope\n1:cpu:/user.slice\n0::/user.slice/session-3.scope\n';
  assert.equal(ownProcsFile(hybrid, '/sys/fs/cgroup/unified'), '/sys/fs/cgroup/unified/user.slice/session-3.scope/cgroup.procs');
  assert.equal(ownProcsFile('0::/\n', '/sys/fs/cgroup'), '/sys/fs/cgroup/cgroup.procs');
  // a process entered from outside its cgroup namespace sees a path above the mount's root
  assert.equal(ownProcsFile('0::/../..\n', '/sys/fs/cgroup'), undefined);
  assert.equal(ownProcsFile('0::/a/./b\n', '/sys/fs/cgroup'), undefined);
  // cgroup v1 only: no "0::" line
  assert.equal(ownProcsFile('2:cpu,cpuacct:/\n1:name=systemd:/init.scope\n', '/sys/fs/cgroup/unified'), undefined);
  assert.equal(ownProcsFile('', '/sys/fs/cgroup'), undefined);
});
