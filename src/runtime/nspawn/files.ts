/**
 * @module runtime/nspawn/files
 * Writes and removes a machine's files in systemd's places (see paths.ts). Writes are
 * atomic (temp + fsync + rename). Removal is thorough and idempotent, so `rm` and a
 * failed create leave no unit, drop-in, settings file, mount or directory behind.
 */
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDir, isErrno, removeTree, writeFileAtomic } from '../../base/fs.ts';
import { fromSystemError } from '../../base/errors.ts';
import type { MachinePaths } from './paths.ts';

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
  await ensureDir(p.dropInDir);
  for (const d of f.dropIns) {
    if (!/^[\w.@-]+\.conf$/.test(d.file)) throw new Error(`bad drop-in name ${d.file}`);
    await writeFileAtomic(join(p.dropInDir, d.file), d.text);
  }
  await writeFileAtomic(p.nspawnFile, f.nspawnText);
}

/** Removes settings, drop-ins (the whole .d dir: hand edits die with the machine), state. */
export async function removeMachineFiles(p: MachinePaths): Promise<void> {
  try {
    await rm(p.nspawnFile, { force: true });
    // nspawn's image lock, left behind when nspawn was SIGKILLed
    await rm(join(p.rootDir, '..', `.#${p.name}.lck`), { force: true });
    await removeTree(p.dropInDir);
    await removeTree(p.stateDir);
    await rmdir(p.rootDir).catch((e: unknown) => {
      if (!isErrno(e, 'ENOENT')) throw e;
    });
  } catch (e) {
    throw fromSystemError(e);
  }
}

/** Names of drop-in files present for the machine (berth's and hand-made ones). */
export async function listDropIns(p: MachinePaths): Promise<string[]> {
  return (await readdir(p.dropInDir).catch(() => [] as string[])).filter((f) => f.endsWith('.conf')).sort();
}
