/**
 * @module runtime/nspawn/userns
 * UID/GID ranges for machines. nspawn's own `PrivateUsers=pick` chooses a range only when
 * the container starts, but the idmapped lowers (rootfs.ts) are mounted before that, so
 * berth picks the range itself, the way nspawn does: 65536 IDs at a 64 Ki boundary in
 * nspawn's pick window (0x00080000–0x6FFF0000), first candidate from a hash of the name,
 * skipping ranges that any .nspawn file in /etc/systemd/nspawn already claims or that
 * /etc/subuid hands out. The range is written to the .nspawn file as
 * `PrivateUsers=BASE:65536` with `PrivateUsersOwnership=off` (nothing to shift: the lowers
 * are idmapped; the upper dir holds files as their host UIDs BASE+uid), so it stays fixed
 * for the machine's lifetime (and across renames), as files in its upper dir depend on it.
 * Callers hold the machines lock while picking and writing.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../../base/errors.ts';
import type { UidRange } from './rootfs.ts';

export const RANGE_SIZE = 0x10000;
const PICK_FIRST = 0x00080000;
const PICK_LAST = 0x6fff0000;

/** Parses a PrivateUsers= value ("yes", "pick", "BASE", "BASE:SIZE"); fixed ranges only. */
export function parsePrivateUsers(v: string): UidRange | undefined {
  const m = /^\s*(\d+)(?::(\d+))?\s*$/.exec(v);
  if (!m) return undefined;
  return { base: Number(m[1]), size: m[2] === undefined ? RANGE_SIZE : Number(m[2]) };
}

function overlaps(a: UidRange, b: UidRange): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

/** Picks a free range for name, avoiding `taken`. Pure. */
export function pickRange(name: string, taken: readonly UidRange[]): UidRange {
  const slots = (PICK_LAST - PICK_FIRST) / RANGE_SIZE;
  const h = createHash('sha256').update(name).digest().readUInt32BE(0);
  for (let i = 0; i < slots; i++) {
    const cand = { base: PICK_FIRST + ((h + i) % slots) * RANGE_SIZE, size: RANGE_SIZE };
    if (!taken.some((t) => overlaps(t, cand))) return cand;
  }
  throw new BerthError('NO_SPACE', 'no free UID range left for a new machine');
}

/** Ranges claimed by .nspawn files (except `exceptFile`) and /etc/subuid. */
export async function takenRanges(nspawnDir: string, exceptFile?: string): Promise<UidRange[]> {
  const out: UidRange[] = [];
  for (const f of await readdir(nspawnDir).catch(() => [] as string[])) {
    if (!f.endsWith('.nspawn') || join(nspawnDir, f) === exceptFile) continue;
    const text = await readFile(join(nspawnDir, f), 'utf8').catch(() => '');
    for (const m of text.matchAll(/^\s*PrivateUsers\s*=\s*(.*)$/gm)) {
      const r = parsePrivateUsers(m[1] ?? '');
      if (r) out.push(r);
    }
  }
  const subuid = await readFile('/etc/subuid', 'utf8').catch(() => '');
  for (const line of subuid.split('\n')) {
    const [, start, count] = line.split(':');
    if (start && count) out.push({ base: Number(start), size: Number(count) });
  }
  return out;
}
