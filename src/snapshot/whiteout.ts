/**
 * @module snapshot/whiteout
 * Turns OCI whiteouts into overlayfs ones after a layer is extracted: `D/.wh.NAME` becomes
 * a character device 0/0 at D/NAME, `D/.wh..wh..opq` becomes the xattr
 * `<prefix>opaque=y` on D (prefix `trusted.overlay.` for root, `user.overlay.` for
 * rootless overlay mounts with `userxattr`).
 *
 * Node has neither mknod nor setxattr, so the conversion is a second, tiny tar stream
 * (written with tar-stream, ASCII-only PAX values, which it encodes correctly) fed to the
 * same GNU tar: one process for any number of whiteouts. Each touched directory is
 * re-emitted with the mode/owner/mtime it has after the first pass (so creating a device
 * inside it does not change its mtime); tar adds the opaque xattr and keeps the others.
 * The paths come from the validated plan: none goes through a symlink of this layer.
 */
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { pack as tarPack, type Header } from 'tar-stream';

type Headers = Partial<Header> & { name: string; pax?: Record<string, string> };
import { run } from '../base/exec.ts';
import { isErrno } from '../base/fs.ts';
import { wrap } from '../base/errors.ts';
import { tarExtractArgs } from './extract.ts';
import type { WhiteoutPlan } from './validate.ts';

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i === -1 ? '' : p.slice(0, i);
}

async function dirHeader(root: string, rel: string, pax?: Record<string, string>): Promise<Headers | undefined> {
  try {
    const st = await lstat(join(root, rel), { bigint: true });
    if (!st.isDirectory()) return undefined;
    const ns = st.mtimeNs % 1_000_000_000n;
    const mtime = `${st.mtimeNs / 1_000_000_000n}.${ns.toString().padStart(9, '0')}`; // keep nanoseconds
    return {
      name: rel === '' ? './' : `${rel}/`, type: 'directory', mode: Number(st.mode) & 0o7777,
      uid: Number(st.uid), gid: Number(st.gid), mtime: new Date(Number(st.mtimeMs)), pax: { ...pax, mtime },
    };
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw e;
  }
}

/** Builds the fix-up tar (as a Buffer: it is tiny) for a plan. Parents that do not exist get 0755 root dirs from tar. */
export async function whiteoutTar(root: string, plan: WhiteoutPlan, xattrPrefix: string): Promise<Buffer | undefined> {
  if (plan.whiteouts.length === 0 && plan.opaques.length === 0) return undefined;
  const p = tarPack();
  const chunks: Buffer[] = [];
  p.on('data', (b: unknown) => {
    chunks.push(b as Buffer);
  });
  const done = new Promise<void>((res, rej) => {
    p.on('end', () => res());
    p.on('error', rej);
  });
  const add = (h: Headers): Promise<void> =>
    new Promise((res, rej) => p.entry(h, (e?: Error | null) => (e ? rej(e) : res())));
  for (const w of plan.whiteouts) {
    await add({ name: w, type: 'character-device', devmajor: 0, devminor: 0, mode: 0, uid: 0, gid: 0, mtime: new Date(0) });
  }
  const opaque = new Set(plan.opaques);
  const dirs = new Set([...plan.whiteouts.map(parentOf), ...plan.opaques]);
  // deepest first is irrelevant to tar (it restores directory metadata at the end)
  for (const d of dirs) {
    const h = await dirHeader(root, d, opaque.has(d) ? { [`SCHILY.xattr.${xattrPrefix}opaque`]: 'y' } : undefined);
    if (h) await add(h);
    else if (opaque.has(d)) await add({ name: `${d}/`, type: 'directory', mode: 0o755, pax: { [`SCHILY.xattr.${xattrPrefix}opaque`]: 'y' } });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Applies a whiteout plan to an extracted layer directory. */
export async function applyWhiteouts(root: string, plan: WhiteoutPlan, xattrPrefix: string): Promise<void> {
  try {
    const buf = await whiteoutTar(root, plan, xattrPrefix);
    if (buf) await run(tarExtractArgs(root), { input: buf });
  } catch (e) {
    throw wrap(`converting whiteouts in ${root}`, e);
  }
}
