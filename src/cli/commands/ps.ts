/**
 * @module cli/commands/ps
 * `berth ps` / `ls`. Its own module, importing the query code alone (not the machine
 * module's index), so the bundle chunk it loads holds only what listing needs: `ps` runs
 * often and its cost is mostly loading JavaScript (see README "Scale").
 */
import { listMachineSummaries } from '../../machine/query.ts';
import { formatTable } from '../table.ts';

export async function psCommand(f: { all?: boolean; json?: boolean; quiet?: boolean }): Promise<void> {
  const all = (await listMachineSummaries({ detail: f.json })).filter((m) => f.all || m.running);
  if (f.json) {
    process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
    return;
  }
  if (f.quiet) {
    process.stdout.write(all.map((m) => `${m.name}\n`).join(''));
    return;
  }
  const rows = all.map((m) => [
    m.name, m.image ?? '-', m.command.join(' ').slice(0, 30) || '-', `${m.state}${m.subState ? ` (${m.subState})` : ''}`,
    m.registered ?? '-', m.enabled ?? '-',
  ]);
  process.stdout.write(formatTable(['NAME', 'IMAGE', 'COMMAND', 'STATE', 'MACHINE', 'ENABLED'], rows));
}

