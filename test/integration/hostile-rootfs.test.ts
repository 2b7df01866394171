/**
 * @module test/integration/hostile-rootfs
 * The hostile-image corpus (test/fixtures/hostile-rootfs.ts) at create, start, exec and
 * `-u`, in a test host: each case snapshots a canary tree on the host (and the host's
 * /etc/shadow) before and after, and checks that berth does the right thing inside the
 * container or fails with a clear error, leaving no machine behind. Ends with
 * `berth image fsck` clean.
 */
import { strict as assert } from 'node:assert';
import { before, describe, test } from 'node:test';
import { CANARY, CANARY_PASSWD, HOSTILE_NAMES, hostileImage, type HostileName } from '../fixtures/hostile-rootfs.ts';
import { useMachineHost } from './machine-helpers.ts';

describe('hostile rootfs: create, start, exec, -u', { timeout: 600_000 }, () => {
  const { berth, sh } = useMachineHost('hostile');
  const canary = async (): Promise<string> =>
    (await sh(`find ${CANARY} /etc/shadow -printf '%p %U:%G %m %s %T@\\n' | sort; sha256sum ${CANARY}/passwd ${CANARY}/secret /etc/shadow`)).stdout;
  const img = (n: HostileName) => `hostile/${n}:latest`;
  let baseline = '';

  before(async () => {
    await sh([
      `rm -rf ${CANARY}`, `mkdir -p ${CANARY}/dir`, `printf '${CANARY_PASSWD}' > ${CANARY}/passwd`,
      `echo canary-secret > ${CANARY}/secret`, `echo 'root:HOST-SHADOW-SECRET:19000:0:99999:7:::' > /etc/shadow`, 'chmod 600 /etc/shadow',
      'mkdir -p /tmp/hvol',
    ].join(' && '));
    await berth(['images']); // imports busybox
    for (const n of HOSTILE_NAMES) {
      const r = await berth(['image', 'import', (await hostileImage(n)).layoutDir, img(n)], { reject: false, timeoutMs: 120_000 });
      assert.equal(r.exitCode, 0, `${n}: ${r.stderr}`);
    }
    baseline = await canary();
  });

  const noMachine = async (name: string) => {
    const left = await sh('ls -a /etc/systemd/nspawn /var/lib/machines /etc/systemd/system', { reject: false });
    assert.doesNotMatch(left.stdout, new RegExp(`\\b${name}\\b`), `leftovers of ${name}`);
  };

  test('WorkingDir a symlink to /: the container root, never the host root (exec, -w)', async () => {
    const run = await berth(['run', '-d', '--name', 'h-wdroot', img('wd-root'), 'sleep', '1000'], { reject: false });
    assert.equal(run.exitCode, 0, run.stderr);
    const ex = await berth(['exec', 'h-wdroot', 'sh', '-c', `pwd; ls bin/busybox; cat srv/berth-canary/secret etc/shadow 2>&1; true`]);
    assert.match(ex.stdout, /^\/\nbin\/busybox\n/);
    assert.doesNotMatch(ex.stdout, /canary-secret|HOST-SHADOW/);
    const w = await berth(['exec', '-w', '/wd', 'h-wdroot', 'sh', '-c', 'pwd; cat ./srv/berth-canary/secret 2>&1; true']);
    assert.match(w.stdout, /^\/\n/);
    assert.doesNotMatch(w.stdout, /canary-secret/);
    // -w through a link to the host dir: resolved inside, where it does not exist
    const wh = await berth(['exec', '-w', `${CANARY}/dir`, 'h-wdroot', 'pwd'], { reject: false });
    assert.equal(wh.exitCode, 4, wh.stderr);
    assert.match(wh.stderr, /working directory \/srv\/berth-canary\/dir: ENOENT/);
    // magic links are refused: /proc/1/root would be an fd of another root
    const magic = await berth(['exec', '-w', '/proc/1/root', 'h-wdroot', 'pwd'], { reject: false });
    assert.equal(magic.exitCode, 19, magic.stderr);
    assert.match(magic.stderr, /working directory \/proc\/1\/root: ELOOP/);
    // the unit's start mounts the root with the installed helper, nothing from the store
    const dropIn = await sh('cd /etc/systemd/system/systemd-nspawn@h-wdroot.service.d; cat *.conf; ls /var/lib/berth');
    assert.match(dropIn.stdout, /^ExecStart=(\S+ netns-exec \S+ \S+ -- )?\/\S+\/dist\/libexec\/berth-helper nspawn-start \S+ --mount --target \/var\/lib\/machines\/h-wdroot /m);
    assert.match(dropIn.stdout, /^ExecStopPost=\/\S+\/dist\/libexec\/berth-helper umount /m);
    assert.doesNotMatch(dropIn.stdout, /python|perl|^libexec$/m);
    assert.equal(await canary(), baseline);
  });

  test('w -> host dir with WorkingDir /w/x: made inside the container, nothing on the host', async () => {
    const r = await berth(['run', '-d', '--name', 'h-wdhost', img('wd-host-dir'), 'sleep', '1000'], { reject: false });
    assert.equal(r.exitCode, 0, r.stderr);
    const ex = await berth(['exec', 'h-wdhost', 'sh', '-c', 'pwd; ls -ld /srv/berth-canary/dir/x | cut -c1; ls /srv/berth-canary']);
    // the working directory is the link's target *inside* (getcwd shows the physical path)
    assert.equal(ex.stdout, '/srv/berth-canary/dir/x\nd\ndir\n', 'only dir/x inside: no passwd or secret of the host canary');
    const upper = await sh('ls -d /var/lib/machines/.berth-h-wdhost/upper/srv/berth-canary/dir/x');
    assert.match(upper.stdout, /upper\/srv\/berth-canary\/dir\/x/);
    assert.equal(await canary(), baseline);
    await berth(['rm', '-f', 'h-wdhost']);
    await noMachine('h-wdhost');
  });

  test('a volume target through a symlink: bound inside the container, nothing made on the host', async () => {
    const r = await berth(['run', '-d', '--name', 'h-vol', '-v', '/tmp/hvol:/v/data:idmap', img('vol-symlink'), 'sleep', '1000'], { reject: false });
    assert.equal(r.exitCode, 0, r.stderr);
    await berth(['exec', 'h-vol', 'sh', '-c', 'echo via-volume > /v/data/f']);
    assert.equal((await sh('cat /tmp/hvol/f')).stdout, 'via-volume\n');
    assert.equal(await canary(), baseline);
    await berth(['rm', '-f', 'h-vol']);
    await noMachine('h-vol');
  });

  const passwdCases: Array<[HostileName, RegExp]> = [
    ['passwd-fifo', /read \/etc\/passwd: EINVAL \(is a FIFO, not a regular file\)/],
    ['passwd-zero', /read \/etc\/passwd: EINVAL \(is a character device, not a regular file\)/],
    ['passwd-host', /user canary: ENOENT \(no such user in the container's \/etc\/passwd\)/],
    ['passwd-big', /read \/etc\/passwd: EFBIG \(104857600 bytes, more than the limit of 4194304\)/],
  ];
  for (const [n, why] of passwdCases) {
    test(`-u with ${n}: a clear error for names, never a hang or a host file; numeric ids work`, async () => {
      const name = `h-${n}`;
      const run = await berth(['run', '--rm', '-u', 'canary', img(n), 'id'], { reject: false, timeoutMs: 30_000 });
      assert.equal(run.exitCode, 126, `${run.exitCode} ${run.stderr}`);
      assert.match(run.stderr, why);
      assert.doesNotMatch(run.stdout, /4242/);
      const d = await berth(['run', '-d', '--name', name, img(n), 'sleep', '1000'], { reject: false });
      assert.equal(d.exitCode, 0, d.stderr);
      const ex = await berth(['exec', '-u', 'canary', name, 'id'], { reject: false, timeoutMs: 30_000 });
      assert.notEqual(ex.exitCode, 0);
      assert.match(ex.stderr, why);
      assert.doesNotMatch(ex.stdout, /4242/);
      // (not `id`: busybox id itself reads the hostile /etc/passwd, even for -u, and hangs on a FIFO)
      const ids = "grep -E '^(Uid|Gid):' /proc/self/status | cut -f2 | tr '\\n' ' '";
      const num = await berth(['exec', '-u', '1234:5678', name, 'sh', '-c', ids], { timeoutMs: 30_000 });
      assert.equal(num.stdout, '1234 5678 ');
      const root = await berth(['exec', name, 'sh', '-c', ids], { timeoutMs: 30_000 });
      assert.equal(root.stdout, '0 0 ');
      await berth(['rm', '-f', name]);
      assert.equal(await canary(), baseline);
    });
  }

  test('after the corpus: no leftovers, fsck clean', async () => {
    await berth(['rm', '-f', 'h-wdroot']);
    await sh('rm -rf /tmp/hvol');
    for (const n of ['h-wdroot', 'h-wdhost', 'h-vol', ...passwdCases.map(([n]) => `h-${n}`)]) await noMachine(n);
    const fsck = await berth(['image', 'fsck'], { reject: false });
    assert.equal(fsck.exitCode, 0, fsck.stdout + fsck.stderr);
    assert.equal(await canary(), baseline);
  });
});
