/**
 * @module snapshot/erofs-mount
 * Mounting one EROFS layer image (for `berth image mount` and fsck-style inspection),
 * through berth-helper: file-backed when the kernel and the filesystem under the store
 * allow it (kernel >= 6.12, not tmpfs), else on a loop device (read-only, autoclear: it
 * goes with the unmount); always ro,nosuid,nodev, under mnt/ (mode 0700: only root can
 * enter, so no one else can reach setuid files or devices of a layer). Machines do not use
 * these mounts: their rootfs takes detached layer mounts (runtime/nspawn/rootfs.ts).
 */
import { chmod, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { runHelper } from '../native/index.ts';
import { mountAt } from './mountinfo.ts';

/** Mounts image read-only at mountPoint (created; its parent made root-only). Idempotent. */
export async function mountErofs(image: string, mountPoint: string): Promise<void> {
  const m = await mountAt(mountPoint);
  if (m?.fsType === 'erofs') return; // already mounted (by us or another berth)
  await mkdir(dirname(mountPoint), { recursive: true, mode: 0o700 });
  await chmod(dirname(mountPoint), 0o700);
  await mkdir(mountPoint, { recursive: true, mode: 0o755 });
  await runHelper(['mount-erofs', image, mountPoint], { context: `mounting layer ${image}` });
}

export async function unmountErofs(mountPoint: string): Promise<void> {
  if ((await mountAt(mountPoint))?.fsType !== 'erofs') return;
  await runHelper(['umount', mountPoint], { context: `unmounting ${mountPoint}` });
}
