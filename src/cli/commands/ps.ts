/**
 * @module cli/commands/ps
 * `berth ps` / `ls`. Its own module, importing the manager alone; the manager loads only
 * the caller's backend and, for nspawn, only its listing code, so the bundle chunks `ps`
 * loads hold what listing needs: `ps` runs often and its cost is mostly loading JavaScript
 * (see README "At scale").
 */
import type { GlobalOptions } from '../program.ts';
import { openManager } from '../manager.ts';
import { formatTable } from '../table.ts';

type Row = { name: string; image?: string; command: string[]; activeState: string; subState: string; enabled?: string; registered?: string };

export async function psCommand(f: { all?: boolean; json?: boolean; quiet?: boolean; user?: string }, g: GlobalOptions): Promise<void> {
  const m = await openManager(g, { asUser: f.user });
  const all = (await m.ps({ all: f.all, detail: f.json })) as Row[];
  if (f.json) {
    process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
    return;
  }
  if (f.quiet) {
    process.stdout.write(all.map((r) => `${r.name}\n`).join(''));
    return;
  }
  const rows = all.map((r) => [
    r.name, r.image ?? '-', r.command.join(' ').slice(0, 30) || '-', `${r.activeState}${r.subState ? ` (${r.subState})` : ''}`,
    r.registered ?? '-', r.enabled ?? '-',
  ]);
  process.stdout.write(formatTable(['NAME', 'IMAGE', 'COMMAND', 'STATE', 'MACHINE', 'ENABLED'], rows));
}
