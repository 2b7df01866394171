/**
 * @module content/root-check
 * berth trusts its store: root-owned tools read and mount what is there, and blobs, locks
 * and snapshots are named by paths below it. A store root that someone else owns, or
 * that another user may write to, would let that user swap blobs after verification,
 * plant symlinks where berth writes, or fill lock files. So, like sshd's StrictModes,
 * berth refuses a `--root`/`BERTH_ROOT` (and every directory it creates on the way
 * there) that is not owned by the caller or is group- or world-writable. Directories
 * that already exist above the root are the user's choice and are not checked.
 *
 * The check runs after creating what is missing, so a directory someone else created
 * meanwhile (a race on a shared /tmp) is caught too.
 */
import { lstat, mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BerthError, fromSystemError } from '../base/errors.ts';
import { isErrno } from '../base/fs.ts';

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return false;
    throw fromSystemError(e);
  }
}

/** Refuses dir unless it is a directory owned by uid and not writable by group or others. */
export async function checkTrustedDir(dir: string, uid: number, what = 'store root'): Promise<void> {
  let st;
  try {
    st = await stat(dir);
  } catch (e) {
    throw fromSystemError(e);
  }
  if (!st.isDirectory()) {
    throw new BerthError('PERMISSION_DENIED', `${what} ${dir} is not a directory`, { details: { path: dir } });
  }
  if (st.uid !== uid) {
    throw new BerthError('PERMISSION_DENIED',
      `${what} ${dir} is owned by uid ${st.uid}, not by you (uid ${uid}); use a directory you own (chown ${uid} ${dir}) or another --root`,
      { details: { path: dir, owner: st.uid, uid } });
  }
  if ((st.mode & 0o022) !== 0) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    throw new BerthError('PERMISSION_DENIED',
      `${what} ${dir} is ${st.mode & 0o002 ? 'world' : 'group'}-writable (mode ${mode}); other users could change the images berth runs as root: run chmod go-w ${dir}`,
      { details: { path: dir, mode } });
  }
}

/** Creates root (and missing parents, 0755) and checks it and everything created on the way. */
export async function prepareStoreRoot(root: string, uid = process.getuid?.() ?? 0): Promise<void> {
  const missing: string[] = [];
  for (let p = root; !(await exists(p)); p = dirname(p)) {
    missing.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const d of missing) {
    try {
      await mkdir(d, { mode: 0o755 });
    } catch (e) {
      if (!isErrno(e, 'EEXIST')) throw fromSystemError(e);
    }
  }
  for (const d of [...missing.filter((d) => d !== root), root]) await checkTrustedDir(d, uid, d === root ? 'store root' : 'store parent directory');
}
