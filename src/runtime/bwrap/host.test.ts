/**
 * The host checks against a fake root (a temp dir holding /etc, /proc/sys and /sys
 * files): each missing piece is refused with its own stable reason and a message naming it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isBerthError } from '../../base/errors.ts';
import { checkTun, probeHost } from './host.ts';
import { parseSubIds, pickSubIdRange } from './subid.ts';

const user = { name: 'tuser', uid: 1000, gid: 1000 };

function fakeRoot(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'berth-bwrap-host-'));
  const all: Record<string, string> = {
    'etc/subuid': 'tuser:100000:65536\n', 'etc/subgid': 'tuser:100000:65536\n', 'usr/bin/newuidmap': '', 'usr/bin/newgidmap': '',
    'proc/sys/net/ipv4/ip_unprivileged_port_start': '1024\n',
    ...files,
  };
  for (const [p, text] of Object.entries(all)) {
    if (text === '\0') continue; // deleted
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  return root;
}

const reason = (r: string) => (e: unknown) => isBerthError(e, 'FAILED_PRECONDITION') && e.details.reason === r;

test('a complete host: ranges, port start, delegated controllers (hybrid cgroup path)', async () => {
  const root = fakeRoot({
    'proc/sys/net/ipv4/ip_unprivileged_port_start': '80\n',
    'sys/fs/cgroup/unified/user.slice/user-1000.slice/user@1000.service/cgroup.controllers': 'cpu memory pids\n',
  });
  try {
    const f = await probeHost({ user, root });
    assert.deepEqual(f.subuid, { start: 100000, count: 65536 });
    assert.equal(f.unprivilegedPortStart, 80);
    assert.deepEqual(f.delegatedControllers, ['cpu', 'memory', 'pids']);
    assert.equal(f.cgroupPath, '/sys/fs/cgroup/unified/user.slice/user-1000.slice/user@1000.service/cgroup.controllers');
  } finally {
    rmSync(root, { recursive: true });
  }
});

test('no controllers delegated (this VM): an empty list, not an error yet', async () => {
  const root = fakeRoot({ 'sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers': '\n' });
  try {
    assert.deepEqual((await probeHost({ user, root })).delegatedControllers, []);
  } finally {
    rmSync(root, { recursive: true });
  }
});

const cases: Array<[string, Record<string, string>, string, RegExp]> = [
  ['no subuid range', { 'etc/subuid': 'other:100000:65536\n' }, 'no-subid-range', /no subordinate ID range for user tuser in \/etc\/subuid.*usermod/],
  ['no subgid file', { 'etc/subgid': '\0' }, 'no-subid-range', /\/etc\/subgid/],
  ['range holding the user itself', { 'etc/subuid': 'tuser:0:65536\n' }, 'subid-range-overlaps', /contains the user's own ID 1000/],
  ['newuidmap missing', { 'usr/bin/newuidmap': '\0' }, 'newuidmap-missing', /newuidmap is not installed.*apt-get install uidmap/],
  ['userns_clone=0', { 'proc/sys/kernel/unprivileged_userns_clone': '0\n' }, 'userns-disabled', /kernel\.unprivileged_userns_clone=0/],
  ['max_user_namespaces=0', { 'proc/sys/user/max_user_namespaces': '0\n' }, 'userns-disabled', /user\.max_user_namespaces=0/],
  ['AppArmor restriction', { 'proc/sys/kernel/apparmor_restrict_unprivileged_userns': '1\n' }, 'userns-disabled', /AppArmor restricts/],
];
for (const [name, files, why, match] of cases) {
  test(`refused: ${name}`, async () => {
    const root = fakeRoot(files);
    try {
      await assert.rejects(probeHost({ user, root }), (e) => reason(why)(e) && match.test((e as Error).message));
    } finally {
      rmSync(root, { recursive: true });
    }
  });
}

test('subuid parsing: numeric owners, comments, malformed lines, first range wins', () => {
  const e = parseSubIds('# x\n1000:200000:10\nbad\ntuser:x:1\ntuser:300000:65536\ntuser:400000:65536\nz:1:0\n');
  assert.deepEqual(pickSubIdRange(e, user, { file: 'f' }), { start: 200000, count: 10 });
  assert.deepEqual(pickSubIdRange(e.slice(1), user, { file: 'f' }), { start: 300000, count: 65536 });
  assert.throws(() => pickSubIdRange(e, user, { file: 'f', minCount: 65536 }), reason('subid-range-too-small'));
});

test('/dev/net/tun must be usable by the user', async () => {
  const root = fakeRoot({ 'dev/net/tun': '' });
  try {
    await assert.rejects(checkTun(root), (e) => reason('tun-unusable')(e) && /has mode 644.*--network=none/.test((e as Error).message));
    await assert.rejects(checkTun(join(root, 'nope')), reason('tun-unusable'));
  } finally {
    rmSync(root, { recursive: true });
  }
});
