/**
 * @module runtime/nspawn/network
 * The nspawn side of a renamed machine's network: its .nspawn binds and its
 * 60-berth-network.conf name the machine, so both are rewritten for the new name.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../base/fs.ts';
import { runtimeNetwork, type Attachment } from '../../network/index.ts';
import { parseUnit, serializeUnit } from '../../unit/index.ts';
import type { MachinePaths } from './paths.ts';
import { networkDropIn } from './translate-dropins.ts';
import type { SeccompStart } from './seccomp-start.ts';

export async function renameNetworkFiles(p: MachinePaths, from: string, att: Attachment, start?: SeccompStart): Promise<void> {
  const rn = runtimeNetwork(att);
  const u = parseUnit(await readFile(p.nspawnFile, 'utf8'));
  const old = new Set(u.getAll('Files', 'BindReadOnly').filter((v) => v.includes(`/etc/berth/machines/${from}/`)));
  if (old.size > 0) {
    const keep = u.getAll('Files', 'BindReadOnly').filter((v) => !old.has(v));
    u.remove('Files', 'BindReadOnly');
    for (const v of keep) u.add('Files', 'BindReadOnly', v);
    for (const f of rn.files) u.add('Files', 'BindReadOnly', `${f.source}:${f.target}`);
    await writeFileAtomic(p.nspawnFile, serializeUnit(u));
  }
  await writeFileAtomic(join(p.dropInDir, '60-berth-network.conf'), serializeUnit(networkDropIn(p.name, rn, start)));
}
