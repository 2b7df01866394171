/**
 * @module test/integration/machine-lifecycle
 * berth machines in a real systemd test host: run -d as systemd-nspawn@NAME.service
 * (systemctl, machinectl and berth agree), the settings and drop-ins in systemd's places,
 * stop/start/kill/restart, machinectl stop/poweroff/terminate, rm leaving nothing behind,
 * foreground run with exit-code propagation, userns ownership on disk, bad input.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { useMachineHost } from './machine-helpers.ts';

describe('machine lifecycle', { timeout: 600_000 }, () => {
  const { berth, sh } = useMachineHost('mlife');

  test('run -d: an active unit, registered with machined, files in standard places', async (t) => {
    const r = await berth(['run', '-d', '--name', 'web', 'busybox', 'sh', '-c', 'echo hello-from-web; exec sleep 1000']);
    t.diagnostic(`run -d (incl. node start) ${r.durationMs} ms`);
    assert.equal(r.stdout.trim(), 'web');
    assert.equal((await sh('systemctl is-active systemd-nspawn@web')).stdout.trim(), 'active');
    const show = await sh('machinectl show web -p Class -p Service -p State');
    assert.match(show.stdout, /Class=container/);
    assert.match(show.stdout, /State=running/);
    const files = await sh('ls /etc/systemd/nspawn/web.nspawn /etc/systemd/system/systemd-nspawn@web.service.d/');
    assert.match(files.stdout, /10-berth-rootfs\.conf/);
    assert.match(files.stdout, /50-berth-resources\.conf/);
    const mnt = await sh('findmnt -n -o FSTYPE /var/lib/machines/web');
    assert.equal(mnt.stdout.trim(), 'overlay');
    const ps = await berth(['ps', '--json']);
    const list = JSON.parse(ps.stdout) as Array<{ name: string; state: string; registered?: string }>;
    assert.deepEqual(list.map((m) => [m.name, m.state, m.registered]), [['web', 'active', 'container']]);
    const logs = await berth(['logs', 'web']);
    assert.match(logs.stdout, /hello-from-web/);
  });

  test('userns: own UID range, image files never chowned, root-created files owned by the range base', async () => {
    const uid = await sh('cat /proc/$(machinectl show web -p Leader --value)/uid_map');
    const [inside, outside] = uid.stdout.trim().split(/\s+/);
    assert.equal(inside, '0');
    assert.notEqual(outside, '0');
    const ex = await berth(['exec', 'web', 'sh', '-c', 'id -u; touch /root/created-inside; ls -ln /bin/busybox']);
    assert.match(ex.stdout, /^0\n/);
    assert.match(ex.stdout, /\s0\s+0\s/, 'image files appear owned by root inside');
    const st = await sh('stat -c %u /var/lib/machines/.berth-web/upper/root/created-inside');
    assert.equal(st.stdout.trim(), outside);
  });

  test('exec: env, workdir, exit code in busybox', async () => {
    const r = await berth(['exec', '-e', 'FOO=b a r', '-w', '/tmp', 'web', 'sh', '-c', 'echo "$FOO"; pwd; exit 7'], { reject: false });
    assert.equal(r.exitCode, 7);
    assert.equal(r.stdout, 'b a r\n/tmp\n');
  });

  test('stop, start, kill, restart', async (t) => {
    const stop = await berth(['stop', 'web']);
    t.diagnostic(`stop ${stop.durationMs} ms`);
    assert.notEqual((await sh('systemctl is-active systemd-nspawn@web', { reject: false })).stdout.trim(), 'active');
    assert.equal((await sh('findmnt -n /var/lib/machines/web', { reject: false })).stdout.trim(), '', 'rootfs unmounted when stopped');
    await berth(['start', 'web']);
    assert.equal((await sh('systemctl is-active systemd-nspawn@web')).stdout.trim(), 'active');
    await berth(['kill', 'web']);
    await sh('for i in $(seq 50); do systemctl is-active -q systemd-nspawn@web || exit 0; sleep 0.1; done; exit 1');
    await berth(['restart', 'web']);
    assert.equal((await sh('systemctl is-active systemd-nspawn@web')).stdout.trim(), 'active');
    // Where the time goes: berth's CLI start vs the unit itself.
    const ps = await berth(['ps']);
    const rawStop = await sh('systemctl stop systemd-nspawn@web');
    const rawStart = await sh('systemctl start systemd-nspawn@web');
    t.diagnostic(`berth ps ${ps.durationMs} ms; systemctl stop ${rawStop.durationMs} ms; systemctl start (rootfs helper + nspawn) ${rawStart.durationMs} ms`);
  });

  test('machinectl poweroff / terminate / stop act on the same unit', async () => {
    for (const verb of ['poweroff', 'terminate', 'stop']) {
      await berth(['start', 'web']);
      await sh(`machinectl ${verb} web`);
      await sh('for i in $(seq 100); do systemctl is-active -q systemd-nspawn@web || exit 0; sleep 0.1; done; echo still active; exit 1');
    }
  });

  test('rm leaves no unit, mount, file or registration behind', async () => {
    await berth(['start', 'web']);
    const busy = await berth(['rm', 'web'], { reject: false });
    assert.equal(busy.exitCode, 17, 'running: FAILED_PRECONDITION');
    await berth(['rm', '-f', 'web']);
    const left = await sh('ls -a /etc/systemd/nspawn /var/lib/machines; ls /etc/systemd/system; machinectl list --no-legend; findmnt -n -o TARGET | grep machines; systemctl list-units --all --no-legend "systemd-nspawn@*"', { reject: false });
    assert.doesNotMatch(left.stdout, /web/);
  });

  test('-u with Docker semantics: uid:gid, a name from the image passwd, a bare uid; -d too', async () => {
    const cases: Array<[string, RegExp]> = [
      ['1234:5678', /^uid=1234 gid=5678 groups=5678$/],
      ['nobody', /^uid=65534\(nobody\) gid=65534\(nogroup\)/],
      ['4321', /^uid=4321 gid=0\(root\)/],
    ];
    for (const [user, want] of cases) {
      const r = await berth(['run', '--rm', '-u', user, 'busybox', 'id']);
      assert.match(r.stdout.trim(), want, `-u ${user}`);
    }
    const d = await berth(['run', '-d', '--name', 'usr', '-u', '1234:5678', 'busybox', 'sh', '-c', 'id > /tmp/id; exec sleep 1000']);
    assert.equal(d.stdout.trim(), 'usr');
    const id = await berth(['exec', 'usr', 'cat', '/tmp/id']);
    assert.match(id.stdout, /^uid=1234 gid=5678/);
    const bad = await berth(['run', '--rm', '-u', 'nosuchuser', 'busybox', 'id'], { reject: false });
    assert.notEqual(bad.exitCode, 0);
    assert.match(bad.stderr, /user nosuchuser: ENOENT \(no such user in the container's \/etc\/passwd\)/);
    await berth(['rm', '-f', 'usr']);
  });

  test('foreground run: output, exit code, --rm', async () => {
    const r = await berth(['run', '--rm', '--name', 'fg', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 42'], { reject: false });
    assert.equal(r.exitCode, 42);
    assert.match(r.stdout, /out/);
    assert.match(r.stderr, /err/);
    const left = await sh('ls /etc/systemd/nspawn /var/lib/machines; machinectl list --no-legend', { reject: false });
    assert.doesNotMatch(left.stdout, /fg/);
  });

  test('bad input: clear errors, nothing left behind', async () => {
    await berth(['run', '-d', '--name', 'dup', 'busybox', 'sleep', '100']);
    const dup = await berth(['run', '-d', '--name', 'dup', 'busybox', 'true'], { reject: false });
    assert.equal(dup.exitCode, 5, dup.stderr);
    assert.match(dup.stderr, /already in use/);
    const bad = await berth(['run', '-d', '--name', 'bad/name', 'busybox', 'true'], { reject: false });
    assert.equal(bad.exitCode, 2, bad.stderr);
    const src = await berth(['run', '-d', '--name', 'novol', '-v', '/does/not/exist:/x', 'busybox', 'true'], { reject: false });
    assert.equal(src.exitCode, 4, src.stderr);
    const inj = await berth(['run', '-d', '--name', 'inj', '-e', 'A=x\nBoot=yes', 'busybox', 'true'], { reject: false });
    assert.notEqual(inj.exitCode, 0);
    const left = await sh('ls -a /etc/systemd/nspawn /var/lib/machines', { reject: false });
    assert.doesNotMatch(left.stdout, /novol|inj|bad/);
    await berth(['rm', '-f', 'dup']);
  });
  test('run -d whose root does not mount: the start fails with the helper\'s error, the machine stays created; start works once it mounts', async () => {
    // run -d leaves the mount to the unit's start (nspawn-start --mount): a layer image that cannot be
    // mounted (zeros bound over it) fails the start, not the create.
    await sh('head -c 8192 /dev/zero > /run/zero.img; for f in /var/lib/berth/snapshots/erofs/*.erofs; do mount --bind /run/zero.img "$f"; done');
    let r;
    try {
      r = await berth(['run', '-d', '--name', 'nomount', 'busybox', 'sleep', '1000'], { reject: false });
    } finally {
      await sh('for f in /var/lib/berth/snapshots/erofs/*.erofs; do umount "$f"; done; rm -f /run/zero.img');
    }
    assert.notEqual(r.exitCode, 0, r.stderr);
    assert.match(r.stderr, /was created but did not start/);
    assert.match(r.stderr, /berth-helper: \S+ \/var\/lib\/berth\/snapshots\/erofs\/\S+\.erofs: E[A-Z]+/);
    assert.equal((await sh('systemctl is-active systemd-nspawn@nomount', { reject: false })).stdout.trim(), 'failed');
    assert.equal((await sh('findmnt -n /var/lib/machines/nomount', { reject: false })).stdout.trim(), '', 'nothing mounted');
    await berth(['start', 'nomount']);
    assert.equal((await sh('systemctl is-active systemd-nspawn@nomount')).stdout.trim(), 'active');
    await berth(['rm', '-f', 'nomount']);
  });

  // Last in the file: it untags the busybox image the other tests use.
  test('an image a container uses: rmi refuses, rmi -f untags, prune keeps its layers', async () => {
    await berth(['run', '-d', '--name', 'keep', 'busybox', 'sleep', '1000']);
    const rmi = await berth(['rmi', 'busybox'], { reject: false });
    assert.equal(rmi.exitCode, 17, rmi.stderr);
    assert.match(rmi.stderr, /used by container keep/);
    await berth(['rmi', '-f', 'busybox']);
    await berth(['image', 'prune']);
    const fsck = await berth(['image', 'fsck'], { reject: false });
    assert.equal(fsck.exitCode, 0, fsck.stdout + fsck.stderr);
    await berth(['stop', 'keep']);
    await berth(['start', 'keep']);
    assert.equal((await sh('systemctl is-active systemd-nspawn@keep')).stdout.trim(), 'active');
    await berth(['rm', '-f', 'keep']);
  });
});
