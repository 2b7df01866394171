/**
 * @module snapshot/erofs-image
 * EROFS image tools: check an image (`fsck.erofs`, or the superblock magic when fsck is
 * missing) and mount one read-only. Images are written by the in-process writer
 * (snapshot/erofs), not by mkfs.erofs. Kernels >= 6.12 mount an image *file* directly
 * (file-backed EROFS, no loop device, one page cache); older kernels need a loop device
 * (`mount -o loop`), which we fall back to.
 */
import { open } from 'node:fs/promises';
import { run } from '../base/exec.ts';
import { mountAt } from './mountinfo.ts';

const EROFS_MAGIC = 0xe0f5e1e2;
const SUPERBLOCK_OFFSET = 1024;

/** True when the file starts with an EROFS superblock (cheap completeness check). */
export async function hasErofsMagic(image: string): Promise<boolean> {
  const fh = await open(image, 'r');
  try {
    const b = Buffer.alloc(4);
    const { bytesRead } = await fh.read(b, 0, 4, SUPERBLOCK_OFFSET);
    return bytesRead === 4 && b.readUInt32LE(0) === EROFS_MAGIC;
  } finally {
    await fh.close();
  }
}

/**
 * Full check with `fsck.erofs --extract` (no target: reads and verifies every inode and
 * data block, ~0.1 s for a 120 MB image) when installed; otherwise the superblock magic.
 * Returns the problem, or undefined when the image is fine.
 */
export async function checkErofs(image: string): Promise<string | undefined> {
  const r = await run(['fsck.erofs', '--extract', image], { reject: false }).catch(() => undefined);
  if (r && r.exitCode !== null && r.exitCode !== 127) {
    return r.exitCode === 0 ? undefined : `fsck.erofs: ${r.stderr.trim() || r.stdout.trim() || `exit ${r.exitCode}`}`;
  }
  return (await hasErofsMagic(image)) ? undefined : 'no EROFS superblock';
}

/** mount(2) syscall numbers; only these arches get the file-backed path. */
const SYS_MOUNT: Partial<Record<string, number>> = { x64: 165, arm64: 40 };
const MS_RDONLY = 1;

/**
 * mount(2) of a regular file as EROFS, bypassing mount(8): util-linux's libmount turns
 * every regular-file source of a blkid-known filesystem into a loop device, so it can
 * never ask for a file-backed mount. Node has no mount(), so perl (Essential in Debian)
 * makes the one syscall. Returns false when the kernel refuses (older than 6.12: ENOTBLK).
 */
async function mountFileBacked(image: string, mountPoint: string): Promise<boolean> {
  const nr = SYS_MOUNT[process.arch];
  if (nr === undefined) return false;
  const script = `my ($s, $t, $f) = @ARGV; my $ty = "erofs"; exit(syscall(${nr}, $s, $t, $ty, ${MS_RDONLY}, 0) == 0 ? 0 : 1)`;
  const r = await run(['perl', '-e', script, image, mountPoint], { reject: false }).catch(() => undefined);
  return r?.exitCode === 0;
}

/** Mounts image read-only at mountPoint (exists). File-backed first, then a loop device. */
export async function mountErofs(image: string, mountPoint: string): Promise<void> {
  const m = await mountAt(mountPoint);
  if (m?.fsType === 'erofs') return; // already mounted (by us or another berth)
  if (await mountFileBacked(image, mountPoint)) return;
  await run(['mount', '-t', 'erofs', '-o', 'ro,loop', image, mountPoint], { errorCode: 'FAILED_PRECONDITION' });
}

export async function unmountErofs(mountPoint: string): Promise<void> {
  if ((await mountAt(mountPoint))?.fsType !== 'erofs') return;
  // a loop device set up by mount -o loop has autoclear and goes away with the unmount
  await run(['umount', mountPoint], { errorCode: 'FAILED_PRECONDITION' });
}
