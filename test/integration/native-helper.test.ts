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

  test('run -d starts through nspawn-start with the cached filter: PID 1 gets the programs nspawn gives it', async () => {
    await berth(['run', '-d', '--name', 'fast', 'busybox', 'sleep', '1000']);
    const d = '/run/berth/seccomp';
    const first = await sh([
      'systemctl show -p ExecStart --value systemd-nspawn@fast.service',
      `test -s ${d}/nspawn.cache && test -s ${d}/fast.filter && echo CACHED`,
      // the next machine without the cache (and without a new probe): nspawn's own filter
      `mv ${d}/nspawn.cache ${d}/keep && touch ${d}/nspawn.cache.failed`,
    ].join('\n'));
    assert.match(first.stdout, new RegExp(`${HELPER} nspawn-start ${d}/fast\\.filter --mount --target /var/lib/machines/fast .* -- /usr/bin/systemd-nspawn `));
    assert.match(first.stdout, /^CACHED$/m, 'create made the cache; the start used it');
    // a restart finds the filter file already a link of the cache: no temporary name is left
    await berth(['stop', 'fast']);
    await berth(['start', 'fast']);
    assert.equal((await sh(`ls -a ${d} | grep -c '\\.tmp\\.' || true`)).stdout.trim(), '0');
    await berth(['run', '-d', '--name', 'slow', 'busybox', 'sleep', '1000']);
    const cmp = await sh([
      `test -s ${d}/slow.filter || echo SLOW-EMPTY`,
      'A=$(machinectl show fast -p Leader --value); B=$(machinectl show slow -p Leader --value)',
      `${HELPER} seccomp-dump $A | sha256sum; ${HELPER} seccomp-dump $B | sha256sum`,
      `${FIELDS} /proc/$A/status; echo ---; ${FIELDS} /proc/$B/status`,
      `mv ${d}/keep ${d}/nspawn.cache && rm ${d}/nspawn.cache.failed`,
    ].join('\n'));
    assert.match(cmp.stdout, /^SLOW-EMPTY$/m, 'without a cache the filter file is empty: nspawn filtered');
    const sums = cmp.stdout.split('\n').filter((l) => /^[0-9a-f]{64} /.test(l));
    assert.equal(sums.length, 2, cmp.stdout);
    assert.equal(sums[0], sums[1], 'byte-identical seccomp programs');
    const [a, b] = cmp.stdout.slice(cmp.stdout.indexOf('CapBnd')).split('---\n');
    assert.equal(a, b);
    assert.match(a ?? '', /^Seccomp:\s+2$/m);
    await berth(['rm', '-f', 'fast', 'slow']);
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
  test('rmtree: removes every kind of entry, follows no symlink, any depth with few fds; refuses mounts; bad input', async () => {
    const dir = await mkdtemp(join('/var/tmp', 'berth-rmtree-'));
    try {
      const outside = join(dir, 'outside');
      await mkdir(outside);
      await writeFile(join(outside, 'keep'), 'keep\n');
      const t = join(dir, 't');
      // what a container can leave in its upper dir: links out of the tree, special files,
      // a directory nobody may read, a whiteout device, deep nesting
      const r = await run(['sh', '-c', [
        `mkdir -p ${t}/a/b/c ${t}/locked`, `touch ${t}/a/b/c/x ${t}/locked/y`, `chmod 000 ${t}/locked`,
        `ln -s ${outside} ${t}/link`, `ln -s ${outside}/keep ${t}/a/b/filelink`, `ln -s ../../.. ${t}/a/b/up`,
        `mkfifo ${t}/fifo`, `mknod ${t}/wh c 0 0`,
        `cd ${t} && i=0; while [ $i -lt 600 ]; do mkdir d && cd d; i=$((i+1)); done; touch leaf`,
      ].join(' && ')]);
      assert.equal(r.exitCode, 0, r.stderr);
      // 600 levels with 16 fds: only the current directory is held open
      const rm1 = await run(['sh', '-c', `ulimit -n 16; exec ${HELPER} rmtree ${t}`], { reject: false });
      assert.equal(rm1.exitCode, 0, rm1.stderr);
      assert.ok(!existsSync(t));
      assert.equal(await readFile(join(outside, 'keep'), 'utf8'), 'keep\n', 'nothing outside the tree is touched');
      // a missing path is fine; a symlink or file as PATH is unlinked, its target kept
      await run(['ln', '-s', outside, join(dir, 'lroot')]);
      await writeFile(join(dir, 'file'), 'x');
      await run([HELPER, 'rmtree', join(dir, 'missing'), join(dir, 'lroot'), join(dir, 'file')]);
      assert.deepEqual((await run(['ls', dir])).stdout, 'outside\n');
      assert.equal(await readFile(join(outside, 'keep'), 'utf8'), 'keep\n');
      // a file system mounted inside the tree is refused, and left as it is
      const m = join(dir, 'm');
      await mkdir(join(m, 'mnt'), { recursive: true });
      await run(['mount', '-t', 'tmpfs', 'berth-test', join(m, 'mnt')]);
      try {
        await writeFile(join(m, 'mnt', 'in-mount'), 'x');
        const busy = await run([HELPER, 'rmtree', m], { reject: false });
        assert.equal(busy.exitCode, 10);
        assert.equal(busy.stderr, `berth-helper: rmdir ${m}/mnt: EBUSY (Device or resource busy)\n`);
        assert.ok(existsSync(join(m, 'mnt', 'in-mount')));
      } finally {
        await run(['umount', join(m, 'mnt')]);
      }
      for (const [arg, msg] of [['relative', 'rmtree relative: EINVAL (not an absolute path)'], ['/', 'rmtree /: EINVAL (not a removable path)'], [`${dir}/..`, `rmtree ${dir}/..: EINVAL (not a removable path)`]] as const) {
        const bad = await run([HELPER, 'rmtree', arg], { reject: false });
        assert.equal(bad.exitCode, 2);
        assert.equal(bad.stderr, `berth-helper: ${msg}\n`);
      }
    } finally {
      await run(['rm', '-rf', '--one-file-system', dir]);
    }
  });

  test('rmtree under a racing writer that swaps directories for symlinks: nothing outside is touched', async () => {
    const dir = await mkdtemp(join('/var/tmp', 'berth-rmrace-'));
    try {
      const outside = join(dir, 'outside');
      await mkdir(outside);
      for (let i = 0; i < 20; i++) await writeFile(join(outside, `f${i}`), 'keep');
      for (let round = 0; round < 5; round++) {
        const t = join(dir, `t${round}`);
        await run(['sh', '-c', `for i in $(seq 1 40); do mkdir -p ${t}/d$i/e/f && touch ${t}/d$i/e/f/x ${t}/d$i/e/y; done`]);
        // the writer moves each directory away and puts a symlink to outside/ in its place
        const writer = run(['sh', '-c', `cd ${t} 2>/dev/null || exit 0; for i in $(seq 1 40); do for j in d$i d$i/e; do mv $j $j.moved 2>/dev/null && ln -s ${outside} $j 2>/dev/null; done; done`], { reject: false });
        const r = await run([HELPER, 'rmtree', t], { reject: false });
        await writer;
        // success, or a clean refusal (moved under it); never a removal through the links
        assert.ok(r.exitCode === 0 || /ESTALE|ENOTEMPTY|ENOENT/.test(r.stderr), r.stderr);
        assert.equal((await run(['ls', outside])).stdout.split('\n').filter(Boolean).length, 20, `round ${round}: outside/ is intact`);
        await run([HELPER, 'rmtree', t]);
        assert.ok(!existsSync(t));
      }
    } finally {
      await run(['rm', '-rf', '--one-file-system', dir]);
    }
  });

  test('erofs-write confines itself once its files are open: no new privileges, a seccomp filter; bad arguments are refused', async () => {
    const dir = await mkdtemp(join('/var/tmp', 'berth-erofs-confine-'));
    try {
      // stdin is a FIFO nobody writes yet: the writer sits in read(), already confined
      const script = [
        `mkfifo ${dir}/in`,
        `${HELPER} erofs-write --image ${dir}/l.erofs --tails ${dir}/l.t --max-bytes 1000000 --max-entries 10 --xattr-prefix trusted < ${dir}/in > ${dir}/out 2>&1 &`,
        'P=$!',
        `exec 3> ${dir}/in`,
        'for i in $(seq 50); do grep -q "^Seccomp:[[:space:]]*2" /proc/$P/status && break; sleep 0.05; done',
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/$P/status",
        'printf "%1024s" "" | tr " " "\\0" >&3', // an empty layer: two zero blocks
        'exec 3>&-',
        'wait $P; echo "status $?"',
        `cat ${dir}/out`,
      ].join('\n');
      const r = await run(['bash', '-c', script]);
      assert.match(r.stdout, /^NoNewPrivs:\s+1$/m, r.stdout);
      assert.match(r.stdout, /^Seccomp:\s+2$/m, r.stdout);
      assert.match(r.stdout, /^status 0$/m, r.stdout);
      assert.match(r.stdout, /^ok 0 1 8192 1024 5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef$/m, 'the empty layer: a root inode, its diff ID');
      // an image that exists is never overwritten; a relative decompressor is refused
      const again = await run([HELPER, 'erofs-write', '--image', `${dir}/l.erofs`, '--tails', `${dir}/t2`, '--max-bytes', '1', '--max-entries', '1', '--xattr-prefix', 'user'], { reject: false, input: '' });
      assert.equal(again.exitCode, 9, again.stderr);
      assert.match(again.stderr, /erofs-write: open .*l\.erofs: EEXIST/);
      const rel = await run([HELPER, 'erofs-write', '--image', `${dir}/x.erofs`, '--tails', `${dir}/t3`, '--max-bytes', '1', '--max-entries', '1', '--xattr-prefix', 'user', '--decompress', 'igzip'], { reject: false, input: '' });
      assert.equal(rel.exitCode, 2, rel.stderr);
    } finally {
      await run(['rm', '-rf', '--one-file-system', dir]);
    }
  });
});

describe('berth-helper netns-exec and private-tmpfs on this VM', () => {
  // Everything happens in a network and mount namespace this test makes (unshare -n -m):
  // its own /run/netns tmpfs, its own veth pair; nothing reaches the VM's network.
  async function inOwnNetns(script: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const r = await run(['unshare', '-n', '-m', '--propagation', 'private', 'sh', '-c',
      `mkdir -p /run/netns && mount -t tmpfs berth-test /run/netns && printf 'netns add t\\nlink add tv type veth peer name eth0 netns t\\nlink set tv up\\n' | ip -batch - && ${script}`], { reject: false, timeoutMs: 30_000 });
    return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  test('netns-exec: MAC, address, route, sysctls set before CMD runs; a second run is idempotent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-netns-'));
    try {
      const conf = join(dir, 'netns.conf');
      await writeFile(conf, '# test\nlink eth0\nmac 02:b3:0a:c7:00:05\naddress 10.199.0.5/24\ngateway 10.199.0.1\n', { mode: 0o644 });
      const show = 'ip -o addr show eth0; ip route; ip -o link show eth0; cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range';
      const r = await inOwnNetns(`${HELPER} netns-exec /run/netns/t ${conf} -- true && ${HELPER} netns-exec /run/netns/t ${conf} -- sh -c '${show}'`);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.match(r.stdout, /inet 10\.199\.0\.5\/24 brd 10\.199\.0\.255 scope global eth0/);
      assert.match(r.stdout, /^default via 10\.199\.0\.1 dev eth0/m);
      assert.match(r.stdout, /link\/ether 02:b3:0a:c7:00:05/);
      assert.match(r.stdout, /<[^>]*\bUP\b[^>]*>/);
      assert.match(r.stdout, /^0\n0\s+2147483647\n$/m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('netns-exec: a bad or loose config, a missing link or namespace: one line naming the step, nothing run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-netns-'));
    try {
      const good = 'link eth0\nmac 02:b3:0a:c7:00:05\naddress 10.199.0.5/24\ngateway 10.199.0.1\n';
      const cases: Array<[string, string, number, RegExp, { mode?: number; ns?: string }?]> = [
        ['missing key', 'link eth0\n', 2, /netns config \S+: EINVAL \(needs link, mac, address and gateway\)/],
        ['twice', `${good}link eth0\n`, 2, /EINVAL \(a key is given twice\)/],
        ['unknown key', `${good}exec /bin/sh\n`, 2, /EINVAL \(unknown key\)/],
        ['multicast mac', good.replace('02:b3', '03:b3'), 2, /mac: not a unicast/],
        ['bad prefix', good.replace('/24', '/31'), 2, /address: not A\.B\.C\.D\/PREFIX/],
        ['bad gateway', good.replace('10.199.0.1\n', '10.199.0.256\n'), 2, /gateway: not A\.B\.C\.D/],
        ['NUL byte', `${good}\0`, 2, /contains a NUL byte/],
        ['too big', `${good}#${'x'.repeat(5000)}\n`, 7, /EFBIG \(larger than 4 KiB\)/],
        ['world-writable', good, 4, /EPERM \(must be owned by root and not group- or world-writable\)/, { mode: 0o666 }],
        ['no such link', good.replace('link eth0', 'link eth9'), 5, /if_nametoindex eth9: ENODEV/],
        ['no such namespace', good, 3, /open netns \/run\/netns\/nope: ENOENT/, { ns: '/run/netns/nope' }],
        ['not a namespace', good, 1, /setns\(CLONE_NEWNET\) \/etc\/hostname: EINVAL/, { ns: '/etc/hostname' }],
      ];
      for (const [what, text, status, line, o] of cases) {
        const conf = join(dir, `${what.replace(/\W/g, '-')}.conf`);
        await writeFile(conf, text);
        await run(['chmod', (o?.mode ?? 0o644).toString(8), conf]);
        const r = await inOwnNetns(`${HELPER} netns-exec ${o?.ns ?? '/run/netns/t'} ${conf} -- sh -c 'echo RAN'`);
        assert.equal(r.exitCode, status, `${what}: ${r.stderr}`);
        assert.match(r.stderr, line, what);
        assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line`);
        assert.doesNotMatch(r.stdout, /RAN/, `${what}: the command did not run`);
      }
      const fifo = join(dir, 'fifo');
      await run(['mkfifo', fifo]);
      const r = await inOwnNetns(`${HELPER} netns-exec /run/netns/t ${fifo} -- true`);
      assert.equal(r.exitCode, 7);
      assert.match(r.stderr, /netns config \S+fifo: EINVAL \(not a regular file\)/, 'a FIFO is refused without blocking');
      const link = join(dir, 'link.conf');
      await run(['ln', '-s', join(dir, 'missing-key.conf'), link]);
      assert.match((await inOwnNetns(`${HELPER} netns-exec /run/netns/t ${link} -- true`)).stderr, /open netns config \S+link\.conf: ELOOP/, 'a symlinked config is refused');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('private-tmpfs --mount: the rootfs is mounted for CMD only, its directories made in the upper dir, no fd left open', async () => {
    const dir = await mkdtemp(join('/var/tmp', 'berth-privmount-'));
    try {
      await mkdir(join(dir, 'layer', 'etc'), { recursive: true });
      await writeFile(join(dir, 'layer', 'etc', 'hello'), 'from the layer\n');
      const root = join(dir, 'root');
      const mountArgs = ['--target', root, '--upper', join(dir, 'upper'), '--work', join(dir, 'work'), '--owner', '0:0', '--mkdir', '/usr', '--mkdir', '/srv/data', join(dir, 'layer')];
      const fds = 'ls /proc/self/fd | wc -l';
      const r = await run([HELPER, 'private-tmpfs', '/run/berth-test-privmount', '--mount', ...mountArgs, '--', 'sh', '-c',
        `cat ${root}/etc/hello; grep -c " ${root} " /proc/self/mountinfo; ${fds}`], { timeoutMs: 10_000 });
      // the same fds as without --mount: none of the mount's is left to CMD
      const plain = await run([HELPER, 'private-tmpfs', '/run/berth-test-privmount', '--', 'sh', '-c', fds]);
      assert.equal(r.stdout, `from the layer\n1\n${plain.stdout}`);
      assert.doesNotMatch(await readFile('/proc/self/mountinfo', 'utf8'), new RegExp(`${dir}|berth-test-privmount`), 'nothing is mounted on the host');
      assert.ok((await stat(join(dir, 'upper', 'srv', 'data'))).isDirectory(), 'the directories are made through the mount, into the upper dir');
      assert.ok((await stat(join(dir, 'upper', 'usr'))).isDirectory());
      // a failing mount stops before CMD runs, with the step named
      const bad = await run([HELPER, 'private-tmpfs', '/run/berth-test-privmount', '--mount', '--target', root, '--upper', join(dir, 'upper'), '--work', join(dir, 'work'), join(dir, 'nope'), '--', 'echo', 'ran'], { reject: false });
      assert.notEqual(bad.exitCode, 0);
      assert.equal(bad.stdout, '');
      assert.equal(bad.stderr, `berth-helper: open_tree ${dir}/nope: ENOENT (No such file or directory)\n`);
      const noSep = await run([HELPER, 'private-tmpfs', '/run/berth-test-privmount', '--mount', '--target', root, 'echo'], { reject: false });
      assert.equal(noSep.exitCode, 2);
    } finally {
      await rm('/run/berth-test-privmount', { recursive: true, force: true });
      await run(['rm', '-rf', '--one-file-system', dir]);
    }
  });

  test('nspawn-start --mount: the root is mounted before the exec, a failing mount stops it, bad arguments are refused', async () => {
    const dir = await mkdtemp(join('/var/tmp', 'berth-nsmount-'));
    const fdir = '/run/berth-test-nsmount-filter';
    try {
      await mkdir(join(dir, 'layer', 'etc'), { recursive: true });
      await writeFile(join(dir, 'layer', 'etc', 'hello'), 'from the layer\n');
      const root = join(dir, 'root');
      const mountArgs = ['--target', root, '--upper', join(dir, 'upper'), '--work', join(dir, 'work'), '--owner', '0:0', '--mkdir', '/srv/data', join(dir, 'layer')];
      // in a mount namespace of its own (private-tmpfs), so nothing stays mounted on the host;
      // /bin/sh stands in for nspawn: options nspawn-start does not know only skip the cache
      const start = (args: string[], cmd: string) => run([HELPER, 'private-tmpfs', '/run/berth-test-nsmount', '--', HELPER, 'nspawn-start', `${fdir}/t.filter`, ...args, '--', '/bin/sh', '-c', cmd], { reject: false, timeoutMs: 10_000 });
      const r = await start(['--mount', ...mountArgs], `cat ${root}/etc/hello; ls -d ${root}/srv/data`);
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(r.stdout, `from the layer\n${root}/srv/data\n`);
      assert.ok((await stat(join(dir, 'upper', 'srv', 'data'))).isDirectory(), 'the directories are made through the mount');
      const bad = await start(['--mount', '--target', root, '--upper', join(dir, 'upper'), '--work', join(dir, 'work'), join(dir, 'nope')], 'echo ran');
      assert.notEqual(bad.exitCode, 0);
      assert.equal(bad.stdout, '', 'nothing runs after a failed mount');
      assert.equal(bad.stderr, `berth-helper: open_tree ${dir}/nope: ENOENT (No such file or directory)\n`);
      const noSep = await run([HELPER, 'nspawn-start', `${fdir}/t.filter`, '--mount', '--target', root, '/bin/true'], { reject: false });
      assert.equal(noSep.exitCode, 2);
      assert.match(noSep.stderr, /usage berth-helper nspawn-start FILTER \[--mount MOUNT-ARG\.\.\.\] -- /);
    } finally {
      await rm('/run/berth-test-nsmount', { recursive: true, force: true });
      await rm(fdir, { recursive: true, force: true });
      await run(['rm', '-rf', '--one-file-system', dir]);
    }
  });

  test('private-tmpfs: CMD sees a fresh 0755 tmpfs on DIR, the host does not; bad input is refused', async () => {
    const r = await run([HELPER, 'private-tmpfs', '/run/berth-test-private/x', '--', 'sh', '-c', 'grep " /run/berth-test-private/x " /proc/self/mountinfo; stat -c %a /run/berth-test-private/x'], { timeoutMs: 10_000 });
    assert.match(r.stdout, /tmpfs berth-nspawn rw,mode=755\n755\n$/);
    assert.match(r.stdout, /nosuid,nodev/);
    assert.doesNotMatch(await readFile('/proc/self/mountinfo', 'utf8'), /berth-test-private/);
    await rm('/run/berth-test-private', { recursive: true, force: true });
    const rel = await run([HELPER, 'private-tmpfs', 'relative', '--', 'true'], { reject: false });
    assert.equal(rel.exitCode, 2);
    assert.equal(rel.stderr, 'berth-helper: private-tmpfs relative: EINVAL (not an absolute path)\n');
    const missing = await run([HELPER, 'private-tmpfs', '/run/berth-test-private/y', '--', '/nonexistent/cmd'], { reject: false });
    assert.equal(missing.exitCode, 3);
    assert.equal(missing.stderr, 'berth-helper: execvp /nonexistent/cmd: ENOENT (No such file or directory)\n');
    await rm('/run/berth-test-private', { recursive: true, force: true });
  });
});
