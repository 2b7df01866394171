/**
 * Integration (root, overlayfs, erofs, umoci, getfattr): layers built here with GNU tar are
 * unpacked into snapshots of each format, the image is mounted read-only as an overlay and
 * compared with `umoci raw unpack` of the same OCI layout; a command runs in it (chroot).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/base/exec.ts';
import { SnapshotStore } from '../../src/snapshot/store.ts';
import { mountImage, umountImage } from '../../src/snapshot/mount.ts';
import type { SnapshotFormat } from '../../src/snapshot/types.ts';
import { compareTrees } from '../tree-compare.ts';
import { buildLayout, layoutImage, unpackAll, type BuiltImage } from './snapshot-helpers.ts';

let work: string;
let image: BuiltImage;
let reference: string;

const CAP = '0x0100000200200000000000000000000000000000'; // cap_net_bind_service, binary with NULs
const LONG = `${'ü'.repeat(60)}-名前-${'x'.repeat(40)}`; // > 100 bytes UTF-8

/** Shell that builds three layer trees under $W and tars (PAX, xattrs, sparse) + gzips them. */
const BUILD = String.raw`
set -euo pipefail
W=$1
mk() { (cd "$W/$1" && tar --format=pax --numeric-owner --xattrs --xattrs-include='*' --sparse \
        --pax-option=delete=atime,delete=ctime -cf - $(ls -A | sort) | gzip -n > "$W/$1.tar.gz"); }
# layer 1: busybox + applet symlinks
L=$W/l1; mkdir -p $L/bin $L/usr/bin $L/etc $L/tmp $L/usr/share/doc/pkg $L/opt/replace
cp /bin/busybox $L/bin/busybox; chmod 0755 $L/bin/busybox
for a in sh true ls cat echo; do ln -s busybox $L/bin/$a; done
ln -s ../../bin/busybox $L/usr/bin/env
printf 'root:x:0:0:root:/root:/bin/sh\n' > $L/etc/passwd
echo doc > $L/usr/share/doc/pkg/README; echo motd > $L/etc/motd
for f in a b c; do echo $f > $L/opt/replace/$f; done
chmod 1777 $L/tmp
mk l1
# layer 2: hardlinks, xattrs, devices, fifo, setuid, sticky, sparse, long UTF-8 name
L=$W/l2; mkdir -p $L/opt/f $L/dev $L/opt/sticky
echo hard > $L/opt/f/h1; ln $L/opt/f/h1 $L/opt/f/h2
echo capped > $L/opt/f/cap; setfattr -n security.capability -v ${CAP} $L/opt/f/cap
setfattr -n user.berth.test -v 0x00ff10 $L/opt/f/h1
setfattr -n trusted.berth -v hello $L/opt/f
mknod $L/dev/null c 1 3; mknod $L/dev/loop9 b 7 9; mkfifo $L/opt/f/fifo
echo suid > $L/opt/f/suid; chown 1000:1000 $L/opt/f/suid; chmod 4755 $L/opt/f/suid
echo sgid > $L/opt/f/sgid; chown 0:50 $L/opt/f/sgid; chmod 2750 $L/opt/f/sgid
chmod 1777 $L/opt/sticky; chown 33:33 $L/opt/sticky
truncate -s 64M $L/opt/f/sparse; printf tail | dd of=$L/opt/f/sparse bs=1 seek=$((32*1024*1024)) conv=notrunc status=none
echo long > "$L/opt/f/${LONG}"
echo old > $L/opt/f/old; touch -d '2001-02-03 04:05:06' $L/opt/f/old
echo gone > $L/opt/f/remove-me
mk l2
# layer 3: whiteouts (file of l2, dir of l1, file of l1) and an opaque dir
L=$W/l3; mkdir -p $L/opt/f $L/usr/share $L/etc $L/opt/replace
: > $L/opt/f/.wh.remove-me; : > $L/usr/share/.wh.doc; : > $L/etc/.wh.motd
: > $L/opt/replace/.wh..wh..opq; echo new > $L/opt/replace/new
chmod 0755 $L/opt $L/opt/f $L/usr $L/usr/share $L/etc $L/opt/replace
mk l3
`;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'berth-snapcmp-'));
  await run(['bash', '-c', BUILD.replace('${CAP}', CAP).replace('${LONG}', LONG), 'build', work]);
  const gz = await Promise.all(['l1', 'l2', 'l3'].map((l) => readFile(join(work, `${l}.tar.gz`))));
  image = await buildLayout(join(work, 'layout'), gz);
  reference = join(work, 'umoci');
  await run(['umoci', 'raw', 'unpack', '--image', `${image.layout}:latest`, reference]);
});

after(async () => {
  if (process.env.BERTH_TEST_KEEP) return console.log(`kept ${work}`);
  await rm(work, { recursive: true, force: true });
});

for (const format of ['dir', 'erofs'] as SnapshotFormat[]) {
  test(`${format}: merged overlay equals umoci raw unpack, and runs busybox`, async () => {
    const store = new SnapshotStore(join(work, `store-${format}`), { format });
    await unpackAll(store, image);
    const target = join(work, `mnt-${format}`);
    await mountImage(store, image.chainIds, target);
    try {
      const diffs = await compareTrees(target, reference, { hardlinks: true });
      assert.deepEqual(diffs, []);
      const r = await run(['chroot', target, '/bin/busybox', 'true']);
      assert.equal(r.exitCode, 0);
      const sh = await run(['chroot', target, '/bin/sh', '-c', 'ls /opt/replace; cat /opt/f/h2']);
      assert.equal(sh.stdout, 'new\nhard\n');
    } finally {
      await umountImage(store, target);
    }
    // EROFS layer mounts go away with the last overlay using them
    const mnts = await readFile('/proc/self/mountinfo', 'utf8');
    assert.ok(!mnts.includes(join(work, `store-${format}`, 'mnt')), 'layer mounts released');
    for (const id of image.chainIds) assert.deepEqual(await store.check(id), { chainId: id, ok: true });
  });
}

/**
 * The bench images (bench/make-images.sh) against their umoci rootfs: heavy, so opt-in with
 * BERTH_BENCH_DIR=<dir holding images/ and rootfs/>; CI keeps to the small test images.
 */
const BENCH = process.env.BERTH_BENCH_DIR ?? '';
for (const name of ['busybox', 'debian', 'many-small-files']) {
  for (const format of ['dir', 'erofs'] as SnapshotFormat[]) {
    test(`${format}: bench image ${name} equals its umoci rootfs`, async (t) => {
      if (!BENCH) {
        t.skip('set BERTH_BENCH_DIR to compare the bench images');
        return;
      }
      const layout = join(BENCH, 'images', name);
      const ref = join(BENCH, 'rootfs', name);
      if (!(await stat(join(layout, 'index.json')).catch(() => undefined)) || !(await stat(ref).catch(() => undefined))) {
        t.skip(`${layout} or ${ref} missing (run make-images.sh)`);
        return;
      }
      const img = await layoutImage(layout);
      const store = new SnapshotStore(join(work, `bench-${format}`), { format });
      await unpackAll(store, img);
      const target = join(work, `bench-${name}-${format}`);
      await mountImage(store, img.chainIds, target);
      try {
        assert.deepEqual(await compareTrees(target, ref, { hardlinks: true }), []);
        assert.equal((await run(['chroot', target, '/bin/sh', '-c', 'true'])).exitCode, 0);
      } finally {
        await umountImage(store, target);
      }
    });
  }
}
