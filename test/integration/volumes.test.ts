/**
 * @module test/integration/volumes
 * Volumes with Podman's meaning, in a real systemd test host: no idmap by default (files the
 * container creates belong to its mapped UIDs, host root's files are `nobody` inside),
 * `:idmap` as the explicit opt-in, `:U` chowns the source to the container's root,
 * nosuid,nodev always unless asked otherwise (staged at /run/berth/volumes/NAME/I), the same
 * for the attached run, and nothing left behind after stop, SIGKILL or a failed create.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { useMachineHost } from './machine-helpers.ts';

/** The mount options field (6th) of the mountinfo line whose mount point is `target`. */
const OPTS = (target: string): string => `awk '$5 == "${target}" { print $6 }' /proc/self/mountinfo`;

describe('volumes', { timeout: 600_000 }, () => {
  const { berth, sh } = useMachineHost('vols');

  test('default: no idmap, nosuid,nodev, created files owned by the mapped range', async () => {
    await sh('mkdir -p /srv/v && echo host-data > /srv/v/hostfile && cp /usr/bin/busybox /srv/v/sb && chmod 4755 /srv/v/sb');
    await berth(['run', '-d', '--name', 'vol', '-v', '/srv/v:/data', 'busybox', 'sleep', '1000']);
    const opts = await berth(['exec', 'vol', 'sh', '-c', OPTS('/data')]);
    assert.match(opts.stdout, /nosuid/);
    assert.match(opts.stdout, /nodev/);
    const seen = await berth(['exec', 'vol', 'sh', '-c', 'cat /data/hostfile; stat -c %u /data/hostfile']);
    assert.equal(seen.stdout, 'host-data\n65534\n', 'host root files are nobody inside');
    const denied = await berth(['exec', 'vol', 'touch', '/data/made-inside'], { reject: false });
    assert.notEqual(denied.exitCode, 0, "container root cannot write host root's 0755 directory");
    await sh('chmod 1777 /srv/v');
    await berth(['exec', 'vol', 'touch', '/data/made-inside']);
    const base = (await sh("awk '{print $2}' /proc/$(machinectl show vol -p Leader --value)/uid_map")).stdout.trim();
    assert.notEqual(base, '0');
    assert.equal((await sh('stat -c %u /srv/v/made-inside')).stdout.trim(), base, 'container root is not host root on the volume');
    const staged = await sh('findmnt -rn -o TARGET,OPTIONS | grep /run/berth/volumes/vol/0');
    assert.match(staged.stdout, /nosuid,nodev/);
    assert.equal((await sh('stat -c %a /run/berth/volumes')).stdout.trim(), '700');
  });

  test('stop and SIGKILL of nspawn leave no staging mount behind', async () => {
    await berth(['stop', 'vol']);
    assert.equal((await sh('findmnt -rn -o TARGET | grep -c /run/berth/volumes/', { reject: false })).stdout.trim(), '0');
    assert.equal((await sh('ls /run/berth/volumes')).stdout.trim(), '');
    await berth(['start', 'vol']);
    assert.match((await sh('findmnt -rn -o TARGET')).stdout, /\/run\/berth\/volumes\/vol\/0/);
    await sh('kill -9 $(systemctl show -p MainPID --value systemd-nspawn@vol)');
    await sh('for i in $(seq 100); do case $(systemctl show -p ActiveState --value systemd-nspawn@vol) in inactive|failed) break;; esac; sleep 0.1; done');
    assert.equal((await sh('findmnt -rn -o TARGET | grep -c /run/berth/volumes/', { reject: false })).stdout.trim(), '0');
    await berth(['rm', '-f', 'vol']);
    assert.equal((await sh('cat /srv/v/hostfile')).stdout, 'host-data\n', 'rm never touches volume content');
  });

  test(':idmap maps container root onto the owners; :ro and a file volume', async () => {
    await sh('mkdir -p /srv/w /srv/r && echo motd-from-host > /srv/motd');
    await berth(['run', '-d', '--name', 'vid', '-v', '/srv/w:/w:idmap', '-v', '/srv/r:/r:ro', '-v', '/srv/motd:/etc/motd:ro', 'busybox', 'sleep', '1000']);
    await berth(['exec', 'vid', 'touch', '/w/root-made']);
    assert.equal((await sh('stat -c %u /srv/w/root-made')).stdout.trim(), '0');
    assert.match((await berth(['exec', 'vid', 'sh', '-c', OPTS('/w')])).stdout, /nosuid.*nodev|nodev.*nosuid/);
    const ro = await berth(['exec', 'vid', 'touch', '/r/x'], { reject: false });
    assert.notEqual(ro.exitCode, 0, 'read-only volume refuses writes');
    assert.equal((await berth(['exec', 'vid', 'cat', '/etc/motd'])).stdout, 'motd-from-host\n');
    await berth(['rm', '-f', 'vid']);
  });

  test(':U chowns the source to the container root; suid,dev on request', async () => {
    await sh('mkdir -p /srv/u/sub && touch /srv/u/sub/f && ln -sfn /etc /srv/u/link-out');
    await berth(['create', '--name', 'vu', '-v', '/srv/u:/u:U,suid,dev', 'busybox', 'sleep', '1000']);
    const base = (await sh("sed -n 's/^PrivateUsers=\\([0-9]*\\):.*/\\1/p' /etc/systemd/nspawn/vu.nspawn")).stdout.trim();
    assert.equal((await sh('stat -c %u:%g /srv/u /srv/u/sub/f')).stdout, `${base}:${base}\n${base}:${base}\n`);
    assert.equal((await sh('stat -c %u /etc')).stdout.trim(), '0', 'the chown never follows a symlink out');
    await berth(['start', 'vu']);
    const o = (await berth(['exec', 'vu', 'sh', '-c', OPTS('/u')])).stdout;
    assert.doesNotMatch(o, /nosuid|nodev/);
    await berth(['rm', '-f', 'vu']);
  });

  test('attached run stages volumes the same way and cleans up', async () => {
    const r = await berth(['run', '--rm', '-v', '/srv/v:/data:ro,noexec', 'busybox', 'sh', '-c', OPTS('/data')]);
    assert.match(r.stdout, /ro,.*nosuid/);
    assert.match(r.stdout, /noexec/);
    assert.equal((await sh('findmnt -rn -o TARGET | grep -c /run/berth/volumes/', { reject: false })).stdout.trim(), '0');
  });

  test('bad volumes: clear errors, nothing left behind', async () => {
    const missing = await berth(['run', '-d', '--name', 'vbad', '-v', '/srv/none:/x', 'busybox', 'true'], { reject: false });
    assert.equal(missing.exitCode, 4);
    assert.match(missing.stderr, /source \/srv\/none does not exist/);
    const idm = await berth(['run', '-d', '--name', 'vbad', '--userns=host', '-v', '/srv/v:/x:idmap', 'busybox', 'true'], { reject: false });
    assert.equal(idm.exitCode, 2);
    assert.match(idm.stderr, /idmap needs a user namespace/);
    const opt = await berth(['run', '-d', '--name', 'vbad', '-v', '/srv/v:/x:shared', 'busybox', 'true'], { reject: false });
    assert.equal(opt.exitCode, 2);
    assert.match(opt.stderr, /unsupported option "shared"/);
    const left = await sh('ls -a /etc/systemd/nspawn /var/lib/machines; ls /run/berth/volumes 2>/dev/null', { reject: false });
    assert.doesNotMatch(left.stdout, /vbad/);
  });
});
