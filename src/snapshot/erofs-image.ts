/**
 * @module snapshot/erofs-image
 * EROFS image tools: check an image (`fsck.erofs`, or the superblock magic when fsck is
 * missing). Images are written by the in-process writer (snapshot/erofs), not by
 * mkfs.erofs; mounting is in erofs-mount.ts (berth-helper: file-backed, else a loop device).
 */
import { open } from 'node:fs/promises';
import { run } from '../base/exec.ts';

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
