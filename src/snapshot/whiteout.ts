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
 * The plan comes from the validator, but it is not trusted here (second line of defence):
 * GNU tar follows symlinks that already exist in a member's path, so before anything is
 * handed to it every parent of every whiteout and every opaque directory is checked with
 * lstat, one component at a time, to be a real directory in the layer's private
 * extraction dir (missing ones are created with mkdir, which never follows a symlink).
 * A symlink, file or device anywhere on the way is HOSTILE_LAYER. Nothing else writes in
 * that berth-owned, 0700 work area while this runs (tar has exited), so what lstat saw is
 * what tar meets. A whiteout whose target exists in this layer is dropped (the layer's
 * own entry wins, as the OCI spec says).
 */
import { lstat, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BigIntStats } from 'node:fs';
import { pack as tarPack, type Header } from 'tar-stream';

type Headers = Partial<Header> & { name: string; pax?: Record<string, string> };
import { run } from '../base/exec.ts';
import { isErrno } from '../base/fs.ts';
import { BerthError, isBerthError, wrap } from '../base/errors.ts';
import { tarExtractArgs } from './extract.ts';
import type { WhiteoutPlan } from './validate.ts';

function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i === -1 ? '' : p.slice(0, i);
}

async function lstatOrUndefined(path: string): Promise<BigIntStats | undefined> {
  try {
    return await lstat(path, { bigint: true });
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw e;
  }
}

function dirHeader(rel: string, st: BigIntStats, pax?: Record<string, string>): Headers {
  const ns = st.mtimeNs % 1_000_000_000n;
  const mtime = `${st.mtimeNs / 1_000_000_000n}.${ns.toString().padStart(9, '0')}`; // keep nanoseconds
  return {
    name: rel === '' ? './' : `${rel}/`, type: 'directory', mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid), gid: Number(st.gid), mtime: new Date(Number(st.mtimeMs)), pax: { ...pax, mtime },
  };
}

function refuse(rel: string, what: string): BerthError {
  return new BerthError('HOSTILE_LAYER', `hostile layer: whiteout path "${rel}" crosses ${what}`, { details: { entry: rel } });
}

/**
 * Walks root/rel component by component with lstat, creating missing directories, and
 * returns the metadata every existing directory had before we touched it (so tar can
 * restore its mtime). Throws HOSTILE_LAYER at the first component that is not a real
 * directory.
 */
class DirWalker {
  /** Directories verified (or created) so far, with their metadata before any change. */
  readonly dirs = new Map<string, BigIntStats | undefined>();
  constructor(private readonly root: string) {}

  async ensure(rel: string): Promise<void> {
    if (this.dirs.has(rel)) return;
    if (rel !== '') await this.ensure(parentOf(rel));
    const abs = rel === '' ? this.root : join(this.root, rel);
    const st = await lstatOrUndefined(abs);
    if (st === undefined) {
      if (rel === '') throw new BerthError('INTERNAL', `layer directory ${this.root} vanished`);
      await mkdir(abs, { mode: 0o755 });
      this.dirs.set(rel, undefined);
      return;
    }
    if (st.isSymbolicLink()) throw refuse(rel, `the symlink "${rel}"`);
    if (!st.isDirectory()) throw refuse(rel, `the non-directory "${rel}"`);
    this.dirs.set(rel, st);
  }
}

export interface CheckedPlan {
  /** Whiteouts to create, every parent verified to be a real directory. */
  whiteouts: string[];
  /** Opaque directories, verified (or created) as real directories. */
  opaques: string[];
  /** Metadata of every directory that will be touched, before it was (undefined: created by us). */
  dirs: Map<string, BigIntStats | undefined>;
}

/** Verifies (and completes) the directories a plan needs under root; see the module comment. */
export async function checkPlan(root: string, plan: WhiteoutPlan): Promise<CheckedPlan> {
  const walker = new DirWalker(root);
  const whiteouts: string[] = [];
  for (const w of plan.whiteouts) {
    if (w === '' || w.split('/').some((p) => p === '' || p === '.' || p === '..')) throw refuse(w, 'an invalid component');
    await walker.ensure(parentOf(w));
    if ((await lstatOrUndefined(join(root, w))) !== undefined) continue; // this layer's entry wins
    whiteouts.push(w);
  }
  for (const d of plan.opaques) {
    if (d !== '' && d.split('/').some((p) => p === '' || p === '.' || p === '..')) throw refuse(d, 'an invalid component');
    await walker.ensure(d);
  }
  return { whiteouts, opaques: [...plan.opaques], dirs: walker.dirs };
}

/** Builds the fix-up tar (as a Buffer: it is tiny) for a checked plan. */
export async function whiteoutTar(root: string, plan: WhiteoutPlan, xattrPrefix: string): Promise<Buffer | undefined> {
  if (plan.whiteouts.length === 0 && plan.opaques.length === 0) return undefined;
  const checked = await checkPlan(root, plan);
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
  for (const w of checked.whiteouts) {
    await add({ name: w, type: 'character-device', devmajor: 0, devminor: 0, mode: 0, uid: 0, gid: 0, mtime: new Date(0) });
  }
  const opaque = new Set(checked.opaques);
  const touched = new Set([...checked.whiteouts.map(parentOf), ...checked.opaques]);
  // Every touched dir and every dir we created something in gets its header re-emitted:
  // tar restores directory metadata at the end, so the mtimes stay what the layer said.
  for (const [d, st] of checked.dirs) {
    const xattr = opaque.has(d) ? { [`SCHILY.xattr.${xattrPrefix}opaque`]: 'y' } : undefined;
    if (st) await add(dirHeader(d, st, xattr));
    else if (touched.has(d) || xattr) await add({ name: `${d}/`, type: 'directory', mode: 0o755, uid: 0, gid: 0, ...(xattr ? { pax: xattr } : {}) });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Applies a whiteout plan to an extracted layer directory (private to this unpack). */
export async function applyWhiteouts(root: string, plan: WhiteoutPlan, xattrPrefix: string): Promise<void> {
  let buf: Buffer | undefined;
  try {
    buf = await whiteoutTar(root, plan, xattrPrefix);
  } catch (e) {
    if (isBerthError(e)) throw e;
    throw wrap(`converting whiteouts in ${root}`, e);
  }
  if (!buf) return;
  try {
    await run(tarExtractArgs(root), { input: buf, timeoutMs: 600_000 });
  } catch (e) {
    throw wrap(`converting whiteouts in ${root}`, e);
  }
}
