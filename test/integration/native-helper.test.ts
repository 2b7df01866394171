/**
 * @module test/integration/native-helper
 * berth-helper against the real kernel and a real systemd test host:
 *   - exec confinement: an exec'd process has the same CapBnd, NoNewPrivs, Seccomp (and
 *     number of filters) and cgroups as the container's PID 1, seen from inside and from
 *     the host;
 *   - a store on tmpfs in a test host (no file-backed EROFS there, no loop device): the
 *     store is decided once to use directory snapshots, said once, and import + run -d work;
 *   - helper errors name the failing syscall, the path and the errno (missing and garbage
 *     EROFS images, on this VM directly and through `berth run` in the test host).
 */
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { run } from '../../src/base/exec.ts';
import { chainIds } from '../../src/oci/chain-id.ts';
import { buildImage } from '../fixtures/images.ts';
import { useMachineHost } from './machine-helpers.ts';

const HELPER = new URL('../../dist/libexec/berth-helper', import.meta.url).pathname;
const FIELDS = "grep -E '^(CapBnd|NoNewPrivs|Seccomp|Seccomp_filters):'";

describe('berth-helper in a test host', { timeout: 600_000 }, () => {
  const { berth, sh } = useMachineHost('native');

  test('exec confines like the container: CapBnd, NoNewPrivs, Seccomp, cgroups equal PID 1', async () => {
    await berth(['run', '-d', '--name', 'conf', 'busybox', 'sleep', '1000']);
    // from inside: the exec'd shell next to PID 1 (the forwarding init)
    const inside = await berth(['exec', 'conf', 'sh', '-c', `${FIELDS} /proc/self/status; cat /proc/self/cgroup; echo ---; ${FIELDS} /proc/1/status; cat /proc/1/cgroup`]);
    const [self, pid1] = inside.stdout.split('---\n');
    assert.ok(self && pid1, inside.stdout);
    assert.equal(self, pid1);
    assert.match(self, /^Seccomp:\s+2$/m, 'nspawn applies a seccomp filter to the payload');
    assert.match(self, /^CapBnd:\s+0*[0-9a-f]+$/m);
    // from the host: the leader and a running exec'd process
    const outside = await sh([
      'L=$(machinectl show conf -p Leader --value)',
      // as a unit, like every berth call here (an nsenter-ed shell is outside the test host's cgroups)
      'systemd-run --quiet --collect --unit=conf-exec /work/wt/native/bin/berth exec conf sleep 30',
      'for i in $(seq 50); do P=$(pgrep -f "^sleep 30$" | head -1); [ -n "$P" ] && break; sleep 0.1; done',
      `${FIELDS} /proc/$L/status; cat /proc/$L/cgroup; echo ---; ${FIELDS} /proc/$P/status; cat /proc/$P/cgroup`,
      'readlink /proc/$L/ns/pid /proc/$L/ns/mnt /proc/$L/ns/user /proc/$L/ns/net; echo ---; readlink /proc/$P/ns/pid /proc/$P/ns/mnt /proc/$P/ns/user /proc/$P/ns/net',
      'kill $P',
    ].join('\n').replaceAll('/work/wt/native', new URL('../..', import.meta.url).pathname.replace(/\/$/, '')));
    const parts = outside.stdout.split('---\n');
    assert.equal(parts.length, 3, outside.stdout);
    const [leader, execd] = [parts[0]!, parts[1]!.split('\n').slice(0, parts[0]!.split('\n').length - 1).join('\n') + '\n'];
    assert.equal(execd, leader, outside.stdout);
    assert.match(leader, /machine\.slice\/systemd-nspawn@conf\.service\/payload/);
    const nsLines = outside.stdout.split('\n').filter((l) => /^(pid|mnt|user|net):\[/.test(l));
    assert.deepEqual(nsLines.slice(0, 4), nsLines.slice(4, 8));
    await berth(['rm', '-f', 'conf']);
  });

  test('exec: --userns=host too; stdin with -i; SIGTERM reaches the command; exit status relayed', async () => {
    await berth(['run', '-d', '--name', 'hostns', '--userns=host', 'busybox', 'sleep', '1000']);
    const same = await berth(['exec', 'hostns', 'sh', '-c', `${FIELDS} /proc/self/status; cat /proc/self/cgroup; echo ---; ${FIELDS} /proc/1/status; cat /proc/1/cgroup; echo ---; cat /proc/self/uid_map`]);
    const [a, b, map] = same.stdout.split('---\n');
    assert.equal(a, b);
    assert.match(map ?? '', /^\s*0\s+0\s+4294967295$/m, 'the host user namespace');
    const cat = await berth(['exec', '-i', 'hostns', 'cat'], { input: 'through stdin\n' });
    assert.equal(cat.stdout, 'through stdin\n');
    const code = await berth(['exec', 'hostns', 'sh', '-c', 'kill -KILL $$'], { reject: false });
    assert.equal(code.exitCode, 137);
    const repo = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
    const sig = await sh([
      `systemd-run --quiet --unit=exec-sig ${repo}/bin/berth exec hostns sh -c 'trap "exit 9" TERM; sleep 100 & wait'`,
      'for i in $(seq 100); do pgrep -f "^sleep 100$" >/dev/null && break; sleep 0.1; done',
      'systemctl kill --kill-whom=main --signal=SIGTERM exec-sig',
      'for i in $(seq 100); do systemctl is-active -q exec-sig || break; sleep 0.1; done',
      'systemctl show -p ExecMainStatus --value exec-sig; systemctl reset-failed exec-sig 2>/dev/null; true',
    ].join('\n'));
    assert.equal(sig.stdout.trim(), '9', 'SIGTERM to berth → the command\'s trap → its exit status');
    await berth(['rm', '-f', 'hostns']);
  });

  test('exec never hands berth\'s terminal to the container: pipes without -t, a new pty with -t, its own session', async () => {
    await berth(['run', '-d', '--name', 'ttyt', 'busybox', 'sleep', '1000']);
    const repo = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
    await sh([
      "cat > /tmp/tty-run.sh <<'EOF'",
      `P='test -t 0 && echo in=tty || echo in=no; test -t 1 && echo out=tty || echo out=pipe; s=$(cut -d" " -f6 /proc/$$/stat); [ "$s" = "$$" ] && echo own-session'`,
      `${repo}/bin/berth exec ttyt sh -c "$P"`,
      'echo ---',
      `${repo}/bin/berth exec -t ttyt sh -c "$P"`,
      'EOF',
    ].join('\n'));
    // script(1) gives berth a real terminal on stdin, stdout and stderr
    const r = await sh('systemd-run --quiet --pipe --wait script -qec "sh /tmp/tty-run.sh" /dev/null < /dev/null');
    const [plain = '', tty = ''] = r.stdout.replace(/\r/g, '').split('---\n');
    assert.match(plain, /in=no\nout=pipe\nown-session/, `without -t: ${plain}`);
    assert.match(tty, /in=tty\nout=tty\nown-session/, `with -t: ${tty}`);
    await berth(['rm', '-f', 'ttyt']);
  });

  test('berth image mount: nosuid,nodev overlay, layers ro,nosuid,nodev under a root-only mnt/', async () => {
    await berth(['image', 'mount', 'busybox', '/tmp/imgmnt']);
    const m = await sh("findmnt -n -o OPTIONS /tmp/imgmnt; findmnt -rn -o TARGET,OPTIONS | grep '/var/lib/berth/snapshots/mnt/'; stat -c %a /var/lib/berth/snapshots/mnt; ls /tmp/imgmnt/bin/busybox");
    const [overlay, layer, mode] = m.stdout.split('\n');
    assert.match(overlay ?? '', /(^|,)ro,nosuid,nodev(,|$)/);
    assert.match(layer ?? '', /\sro,nosuid,nodev(,|$)/);
    assert.equal(mode, '700');
    await berth(['image', 'umount', '/tmp/imgmnt']);
  });

  test('a store on tmpfs with no loop device: dir snapshots, decided and said once; import and run -d work', async () => {
    const root = '/run/berth-tmpfs-store';
    const layout = (await buildImage('busybox')).layoutDir;
    await sh(`rm -rf ${root}; test ! -e /dev/loop-control && findmnt -n -o FSTYPE --target /run | grep -qx tmpfs`);
    const first = await berth(['--root', root, 'image', 'import', layout, 'tbb:latest'], { reject: false });
    assert.equal(first.exitCode, 0, first.stderr);
    assert.match(first.stderr, /snapshots in \/run\/berth-tmpfs-store\/snapshots will be plain directories: EROFS: fsconfig\(create\) .*: ENOTBLK .*loop fallback: open \/dev\/loop-control: ENOENT/);
    assert.equal((await sh(`cat ${root}/snapshots/format; ls ${root}/snapshots/dir | wc -l; ls ${root}/snapshots/erofs 2>/dev/null | wc -l`)).stdout, 'dir\n1\n0\n');
    const second = await berth(['--root', root, 'images']);
    assert.doesNotMatch(second.stderr, /plain directories/, 'said once');
    const d = await berth(['--root', root, 'run', '-d', '--name', 'tmpfs-m', 'tbb', 'sleep', '1000'], { reject: false });
    assert.equal(d.exitCode, 0, d.stderr);
    assert.doesNotMatch(d.stderr, /plain directories/);
    assert.equal((await berth(['exec', 'tmpfs-m', 'sh', '-c', 'echo ok'])).stdout, 'ok\n');
    const fg = await berth(['--root', root, 'run', '--rm', 'tbb', 'sh', '-c', 'exit 3'], { reject: false });
    assert.equal(fg.exitCode, 3, fg.stderr);
    await berth(['--root', root, 'rm', '-f', 'tmpfs-m']);
    await sh(`rm -rf ${root}`);
  });

  test('a garbage layer image: berth names fsconfig(create), the image and EINVAL', async () => {
    const img = await buildImage('busybox');
    const [chain] = chainIds(img.layers.map((l) => l.diffId));
    const file = `/var/lib/berth/snapshots/erofs/${chain!.slice(7)}.erofs`;
    await berth(['images']);
    await sh(`cp ${file} ${file}.good && head -c 8192 /dev/urandom > ${file}`);
    try {
      const r = await berth(['run', '--rm', 'busybox', 'true'], { reject: false });
      assert.equal(r.exitCode, 17, r.stderr);
      assert.match(r.stderr, new RegExp(`mounting the root filesystem on /var/lib/machines/\\S+: fsconfig\\(create\\) ${file.replace(/\./g, '\\.')}: EINVAL \\(Invalid argument\\)`));
    } finally {
      await sh(`mv ${file}.good ${file}`);
    }
    const ok = await berth(['run', '--rm', 'busybox', 'true'], { reject: false });
    assert.equal(ok.exitCode, 0, ok.stderr);
  });
});

describe('berth-helper on this VM', () => {
  test('EROFS on tmpfs: ENOTBLK for file-backed, so a read-only autoclear loop device; gone after umount', { skip: existsSync('/dev/loop-control') ? false : 'no loop devices here' }, async () => {
    const dir = await mkdtemp(join('/dev/shm', 'berth-loop-'));
    try {
      await mkdir(join(dir, 'src', 'etc'), { recursive: true });
      await writeFile(join(dir, 'src', 'etc', 'hello'), 'from a loop device\n');
      await run(['mkfs.erofs', '--quiet', '-x1', join(dir, 'l.erofs'), join(dir, 'src')]);
      const probe = await run([HELPER, 'probe-erofs', join(dir, 'l.erofs')]);
      assert.equal(probe.stdout, 'loop\n');
      await run([HELPER, 'mount', '--target', join(dir, 'root'), '--upper', join(dir, 'upper'), '--work', join(dir, 'work'), '--idmap', '524288:65536', join(dir, 'l.erofs')]);
      try {
        assert.equal(await readFile(join(dir, 'root', 'etc', 'hello'), 'utf8'), 'from a loop device\n');
        const st = await stat(join(dir, 'root', 'etc', 'hello'));
        assert.equal(st.uid, 524288, 'the layer is idmapped');
        const loops = await run(['losetup', '-l', '-n', '-O', 'NAME,RO,AUTOCLEAR,BACK-FILE']);
        assert.match(loops.stdout, new RegExp(`\\s1\\s+1\\s+${join(dir, 'l.erofs').replace(/[.]/g, '\\.')}`));
      } finally {
        await run([HELPER, 'umount', join(dir, 'root')]);
      }
      const after = await run(['losetup', '-l', '-n', '-O', 'BACK-FILE']);
      assert.doesNotMatch(after.stdout, new RegExp(dir), 'autoclear: the loop device went with the mount');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('errors name the step, the path and the errno, with an exit status per class', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-helper-'));
    try {
      const missing = await run([HELPER, 'mount-erofs', join(dir, 'missing.erofs'), dir], { reject: false });
      assert.equal(missing.exitCode, 3);
      assert.equal(missing.stderr, `berth-helper: fsconfig(create) ${dir}/missing.erofs: ENOENT (No such file or directory)\n`);
      await writeFile(join(dir, 'garbage.erofs'), Buffer.alloc(8192, 0x5a));
      const garbage = await run([HELPER, 'mount-erofs', join(dir, 'garbage.erofs'), dir], { reject: false });
      assert.equal(garbage.exitCode, 1);
      assert.match(garbage.stderr, /^berth-helper: fsconfig\(create\) \S+garbage\.erofs.*: EINVAL \(Invalid argument\)\n$/);
      const usage = await run([HELPER, 'frobnicate'], { reject: false });
      assert.equal(usage.exitCode, 2);
      assert.equal(usage.stderr, 'berth-helper: command frobnicate: EINVAL (unknown command)\n');
      const exec = await run([HELPER, 'exec', '--leader', '999999999', '--', 'true'], { reject: false });
      assert.equal(exec.exitCode, 125);
      assert.match(exec.stderr, /^berth-helper: pidfd_open 999999999: E(SRCH|INVAL) /);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
