/**
 * @module snapshot/mount
 * An image's rootfs = overlayfs of its layer snapshots. Read-only here (inspection,
 * `berth image mount`), and nosuid,nodev: an image's setuid files and devices are not
 * usable through it; the EROFS lowers sit under mnt/, which only root can enter.
 *
 * lowerdir lists the top layer first. The option string goes through mount(2) as one page
 * (util-linux 2.38 has no fsconfig `lowerdir+=`), so at most ~4 KiB: berth passes lower
 * paths *relative to the snapshot root* (mount runs with cwd=root; overlay resolves them at
 * mount time), ~70 bytes each, which fits ~55 layers; more fail with a clear UNSUPPORTED
 * (overlay itself allows 500; a `lowerdir+=` path with util-linux ≥2.39 lifts this).
 *
 * EROFS lowers are mounted at mnt/<hex> on demand and shared by every overlay using them.
 * Their reference count is the kernel's mount table: umountImage unmounts an EROFS layer
 * once no overlay lists it in its lowerdir any more (overlays carry the snapshot root as
 * their mount source, so relative lowers are attributed to the right store). A lock
 * serialises mount/umount.
 */
import { mkdir } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import type { Digest } from '../base/digest.ts';
import { BerthError } from '../base/errors.ts';
import { run } from '../base/exec.ts';
import { withLock } from '../base/lock.ts';
import { mountAt, readMounts } from './mountinfo.ts';
import type { SnapshotStore } from './store.ts';

const MAX_OPTIONS = 4000; // one page minus room for the other options
/** An empty directory under the snapshot root, the bottom lower of one-layer images. */
export const EMPTY_LOWER = 'empty';

/** Overlay option string for lowers given bottom first (as diff_ids are ordered). */
export function overlayOptions(lowersBottomFirst: readonly string[], readonly = true, userxattr = false): string {
  if (lowersBottomFirst.length === 0) throw new BerthError('INVALID_ARGUMENT', 'overlay needs at least one lower layer');
  for (const l of lowersBottomFirst) {
    if (/[:,\\]/.test(l)) throw new BerthError('INVALID_ARGUMENT', `lower path ${l} contains ':' ',' or '\\'`);
  }
  // overlay without upper needs >= 2 lowers (and refuses one twice): add an empty bottom
  const lowers = [...lowersBottomFirst].reverse();
  if (lowers.length === 1) lowers.push(EMPTY_LOWER);
  const opts = `${readonly ? 'ro,' : ''}lowerdir=${lowers.join(':')}${userxattr ? ',userxattr' : ''}`;
  if (opts.length > MAX_OPTIONS) {
    throw new BerthError('UNSUPPORTED', `too many layers to mount (${lowersBottomFirst.length}): overlay options exceed one page`);
  }
  return opts;
}

/**
 * Mounts the overlay of chainIds (bottom first: chainIds[i] identifies layers 0..i) at target.
 * Returns the absolute target.
 */
export async function mountImage(store: SnapshotStore, chainIds: readonly Digest[], target: string, opts: { readonly: true } = { readonly: true }): Promise<string> {
  const abs = resolve(target);
  return withLock(`${store.root}/locks/mount.lock`, async () => {
    if ((await mountAt(abs))?.fsType === 'overlay') throw new BerthError('ALREADY_EXISTS', `${abs} is already a mount point`);
    const lowers: string[] = [];
    for (const id of chainIds) lowers.push(relative(store.root, await store.lowerDir(id)));
    await mkdir(abs, { recursive: true });
    await mkdir(`${store.root}/${EMPTY_LOWER}`, { recursive: true, mode: 0o755 });
    const userxattr = store.policy.xattrPrefix === 'user.overlay.';
    // source = the snapshot root: tells releaseUnusedLayers which root the relative lowers are in
    await run(['mount', '-t', 'overlay', '-o', `nosuid,nodev,${overlayOptions(lowers, opts.readonly, userxattr)}`, store.root, abs], {
      cwd: store.root, errorCode: 'FAILED_PRECONDITION',
    });
    return abs;
  });
}

/** Unmounts an image mounted by mountImage, then every EROFS layer no overlay uses any more. */
export async function umountImage(store: SnapshotStore, target: string): Promise<void> {
  const abs = resolve(target);
  await withLock(`${store.root}/locks/mount.lock`, async () => {
    const m = await mountAt(abs);
    if (m?.fsType !== 'overlay') throw new BerthError('NOT_FOUND', `${abs} is not an overlay mount point`);
    await run(['umount', abs], { errorCode: 'FAILED_PRECONDITION' });
    await releaseUnusedLayers(store);
  });
}

/** Unmounts EROFS layer mounts under mnt/ that no overlay lists as a lower. */
export async function releaseUnusedLayers(store: SnapshotStore): Promise<number> {
  const mounts = await readMounts();
  const used = new Set<string>();
  for (const m of mounts) {
    if (m.fsType !== 'overlay' || m.source !== store.root) continue;
    const lower = /(?:^|,)lowerdir=([^,]*)/.exec(m.superOptions)?.[1] ?? '';
    for (const l of lower.split(':')) {
      const hex = /mnt\/([0-9a-f]{64})$/.exec(l)?.[1];
      if (hex) used.add(hex);
    }
  }
  let n = 0;
  const mntDir = `${store.root}/mnt/`;
  for (const m of mounts) {
    if (m.fsType !== 'erofs' || !m.mountPoint.startsWith(mntDir)) continue;
    const hex = m.mountPoint.slice(mntDir.length);
    if (!/^[0-9a-f]{64}$/.test(hex) || used.has(hex)) continue;
    await store.snapshotter('erofs').release(`sha256:${hex}` as Digest);
    n++;
  }
  return n;
}

