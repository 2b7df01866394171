/**
 * @module runtime/nspawn/files
 * Writes and removes a machine's files in systemd's places (see paths.ts). Writes are
 * atomic (temp + fsync + rename; one directory fsync per batch). Removal is thorough and idempotent, so `rm` and a
 * failed create leave no unit, drop-in, settings file, mount or directory behind.
 */
import { readdir } from 'node:fs/promises';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDir, fsyncDirSync, isErrno, tempPathFor, unlinkQuietly, writeFileAtomic, writeFilesAtomic } from '../../base/fs.ts';
import { runHelper } from '../../native/index.ts';
import { fromSystemError } from '../../base/errors.ts';
import type { MachinePaths } from './paths.ts';
import { machineFilterFile } from './seccomp-start.ts';

export interface DropInText {
  /** File name inside the .d directory, e.g. 50-berth-resources.conf. */
  file: string;
  text: string;
}

export interface MachineFiles {
  nspawnText: string;
  dropIns: DropInText[];
}

/** Writes the .nspawn file and the drop-ins; replaces berth's drop-ins, keeps others. */
export async function writeMachineFiles(p: MachinePaths, f: MachineFiles): Promise<void> {
  await ensureDir(join(p.nspawnFile, '..'));
  await writeDropIns(p, f.dropIns);
  await writeFileAtomic(p.nspawnFile, f.nspawnText);
}

/**
 * Creates the .nspawn file only if none exists: the name's claim. Written complete to a
 * temp file first and link(2)ed into place, so nobody sees it half-written, and of two
 * creators of one name exactly one wins. False when the file exists.
 */
export async function createNspawnFileExclusive(p: MachinePaths, text: string): Promise<boolean> {
  // Synchronous calls: one after the other anyway, and each fs/promises call was a
  // thread-pool round trip (costly in a storm of creates, see base/lock).
  const dir = join(p.nspawnFile, '..');
  const tmp = tempPathFor(p.nspawnFile);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, p.nspawnFile);
    } catch (e) {
      if (isErrno(e, 'EEXIST')) return false;
      throw e;
    }
    fsyncDirSync(dir);
    return true;
  } catch (e) {
    throw fromSystemError(e);
  } finally {
    unlinkQuietly(tmp); // never made, or linked: the temp name goes either way
  }
}

/** Writes the drop-ins only (the .nspawn file is already in place). */
export async function writeDropIns(p: MachinePaths, dropIns: DropInText[]): Promise<void> {
  await ensureDir(p.dropInDir);
  for (const d of dropIns) {
    if (!/^[\w.@-]+\.conf$/.test(d.file)) throw new Error(`bad drop-in name ${d.file}`);
  }
  await writeFilesAtomic(p.dropInDir, dropIns);
}

/**
 * Removes settings, drop-ins (the whole .d dir: hand edits die with the machine), state.
 * The state dir holds the upper dir, which the container's own processes wrote (they die
 * with its PID 1, but one that entered only its mount namespace could still be writing):
 * it goes through `berth-helper rmtree`, which walks it by directory fds and never follows
 * what it finds (native/rmtree.c). The same run takes the drop-in dir. One helper run
 * (~6 ms here, and ~0.2 ms per rmdir on this VM's ext4) and synchronous unlinks, where
 * fs.rm's walk through the thread pool took 20-34 ms of every `run --rm` (~10 entries).
 */
export async function removeMachineFiles(p: MachinePaths): Promise<void> {
  // First: when it fails (a mount inside, say), the settings file keeps the machine listed
  // and a second `berth rm` can finish the job.
  await runHelper(['rmtree', p.stateDir, p.dropInDir], { context: `removing ${p.stateDir}`, timeoutMs: 600_000 });
  const gone = (f: () => void): void => {
    try {
      f();
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) throw fromSystemError(e);
    }
  };
  gone(() => unlinkSync(p.nspawnFile));
  // nspawn's image lock, left behind when nspawn was SIGKILLed
  gone(() => unlinkSync(join(p.rootDir, '..', `.#${p.name}.lck`)));
  gone(() => unlinkSync(machineFilterFile(p.name)));
  gone(() => rmdirSync(p.rootDir));
}

/** Names of drop-in files present for the machine (berth's and hand-made ones). */
export async function listDropIns(p: MachinePaths): Promise<string[]> {
  return (await readdir(p.dropInDir).catch(() => [] as string[])).filter((f) => f.endsWith('.conf')).sort();
}
