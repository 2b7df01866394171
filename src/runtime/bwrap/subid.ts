/**
 * @module runtime/bwrap/subid
 * /etc/subuid and /etc/subgid: `NAME_OR_UID:START:COUNT` lines (shadow-utils' format, what
 * newuidmap checks). Pure parsing plus the choice berth makes: the first range listed for
 * the user, by name or by numeric uid, as rootless Podman does.
 */
import { BerthError } from '../../base/errors.ts';
import type { IdRange } from './types.ts';

export interface SubIdEntry extends IdRange {
  owner: string;
}

const MAX_ID = 2 ** 32 - 2; // (uid_t)-1 is never a valid id

/** Parses the file; malformed lines are skipped (newuidmap ignores them too). */
export function parseSubIds(text: string): SubIdEntry[] {
  const out: SubIdEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length !== 3 || !/^\d{1,10}$/.test(f[1]!) || !/^\d{1,10}$/.test(f[2]!) || f[0] === '') continue;
    const start = Number(f[1]);
    const count = Number(f[2]);
    if (count === 0 || start + count - 1 > MAX_ID) continue;
    out.push({ owner: f[0]!, start, count });
  }
  return out;
}

/**
 * The user's first range. Podman needs 65536 IDs for ordinary images; fewer still work for
 * images whose files use low IDs only, so the floor is the caller's (`minCount`).
 */
export function pickSubIdRange(
  entries: readonly SubIdEntry[],
  user: { name: string; uid: number },
  opts: { file: string; minCount?: number },
): IdRange {
  const mine = entries.filter((e) => e.owner === user.name || e.owner === String(user.uid));
  const first = mine[0];
  if (!first) {
    throw new BerthError('FAILED_PRECONDITION', `no subordinate ID range for user ${user.name} in ${opts.file}; add one, e.g. "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user.name}"`, {
      details: { file: opts.file, user: user.name, reason: 'no-subid-range' },
    });
  }
  if (first.count < (opts.minCount ?? 1)) {
    throw new BerthError('FAILED_PRECONDITION', `the subordinate ID range of ${user.name} in ${opts.file} has ${first.count} IDs; at least ${opts.minCount} are needed`, {
      details: { file: opts.file, user: user.name, reason: 'subid-range-too-small' },
    });
  }
  if (first.start <= user.uid && user.uid < first.start + first.count) {
    throw new BerthError('FAILED_PRECONDITION', `the subordinate ID range of ${user.name} in ${opts.file} contains the user's own ID ${user.uid}`, {
      details: { file: opts.file, user: user.name, reason: 'subid-range-overlaps' },
    });
  }
  return { start: first.start, count: first.count };
}
