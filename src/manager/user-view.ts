/**
 * @module manager/user-view
 * Root's read-only look at one user's containers (`berth ps|status|logs --user NAME`):
 * the user's bwrap units in ~NAME/.config/systemd/user, their state from that user's own
 * manager (`systemctl --user -M NAME@`, one `show` call for all of them), their output from
 * the journal by _SYSTEMD_USER_UNIT= and _UID=. It implements the Runtime seam so the
 * manager's views work unchanged; every verb that would change something refuses with
 * PERMISSION_DENIED (root acting inside a user's manager is not berth's business: the user
 * runs berth themselves).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BerthError } from '../base/errors.ts';
import { run } from '../base/exec.ts';
import { isValidMachineName } from '../container/names.ts';
import { parseUnit, type UnitFile } from '../unit/unit-file.ts';
import type { ContainerState, ContainerStatus, ContainerSummary, EnableResult, GcRoots, PortMapping, Runtime, RuntimeLogsOptions } from '../runtime/runtime.ts';
import { isRunningState } from '../runtime/runtime.ts';
import {
  commandOfDropIn, DROPIN_FILE, gcRootsOfDropIns, imageOfDropIn, parseShowBlocks, portsOfDropIn, unitName,
} from '../runtime/bwrap/translate-unit.ts';

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

const USER_NAME = /^[a-z_][a-z0-9_.-]{0,31}$/i;

/** One /etc/passwd line (getent) → the account; NOT_FOUND for an unknown user. */
export function parsePasswdLine(line: string, name: string): Account {
  const f = line.trim().split(':');
  if (f.length < 7 || f[0] !== name || !/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!) || !f[5]!.startsWith('/')) {
    throw new BerthError('NOT_FOUND', `no such user: ${name}`, { details: { user: name } });
  }
  return { name, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

export async function lookupAccount(name: string): Promise<Account> {
  if (!USER_NAME.test(name)) throw new BerthError('INVALID_ARGUMENT', `--user: "${name}" is not a user name`, { details: { user: name } });
  const r = await run(['getent', 'passwd', '--', name], { reject: false, timeoutMs: 10_000 });
  if (r.exitCode !== 0) throw new BerthError('NOT_FOUND', `no such user: ${name}`, { details: { user: name } });
  return parsePasswdLine(r.stdout.split('\n')[0] ?? '', name);
}

/** `DIR\0TEXT\0` pairs (see readDropIns) → drop-in text by container name; odd names are dropped. */
export function parseDropInDump(out: string): Map<string, string> {
  const parts = out.split('\0');
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const name = /^berth-sandbox@(.+)\.service\.d$/.exec(parts[i]!)?.[1];
    if (name !== undefined && isValidMachineName(name) && !m.has(name)) m.set(name, parts[i + 1]!);
  }
  return m;
}

function statusOf(active: string | undefined): ContainerStatus {
  if (active === 'failed') return 'failed';
  if (isRunningState(active)) return 'running';
  return 'created';
}

export class UserView implements Runtime {
  readonly name = 'bwrap';
  readonly unitDir: string;
  private cache: Promise<Map<string, string>> | undefined;

  constructor(readonly account: Account) {
    this.unitDir = join(account.home, '.config', 'systemd', 'user');
  }

  private refuse(verb: string): never {
    throw new BerthError('PERMISSION_DENIED', `--user ${this.account.name} is a read-only view (ps, status, logs): ${verb} a user's container as that user (e.g. \`sudo -u ${this.account.name} berth ${verb} …\`)`, { details: { user: this.account.name } });
  }

  create(): Promise<void> { return this.refuse('create'); }
  start(): Promise<void> { return this.refuse('start'); }
  stop(): Promise<void> { return this.refuse('stop'); }
  kill(): Promise<void> { return this.refuse('kill'); }
  remove(): Promise<void> { return this.refuse('rm'); }
  exec(): Promise<number> { return this.refuse('exec'); }
  runAttached(): Promise<number> { return this.refuse('run'); }
  enable(): Promise<EnableResult> { return this.refuse('enable'); }
  disable(): Promise<void> { return this.refuse('disable'); }

  /**
   * The user's containers and their drop-ins, read *as the user* (setpriv to their UID and
   * GID, no supplementary groups): everything below their home is theirs to arrange, so a
   * symlink `50-berth.conf -> /etc/shadow` or a `.config -> /root` gets root's berth only
   * what the user could read anyway. Regular files only, at most 64 KiB each, 10 s for all
   * (a FIFO swapped in meanwhile ends in the timeout, not a hang).
   */
  private async readDropIns(): Promise<Map<string, string>> {
    this.cache ??= (async () => {
      const script = `cd -- "$1" 2>/dev/null || exit 0
for d in berth-sandbox@*.service.d; do
  f="$d/${DROPIN_FILE}"
  [ -f "$f" ] || continue
  printf '%s\\0' "$d"; head -c 65536 -- "$f" | tr -d '\\000'; printf '\\0'
done`;
      const r = await run(['setpriv', `--reuid=${this.account.uid}`, `--regid=${this.account.gid}`, '--clear-groups', '--', 'sh', '-c', script, 'berth-user-view', this.unitDir], {
        reject: false, timeoutMs: 10_000, env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
      });
      if (r.exitCode !== 0) throw new BerthError('FAILED_PRECONDITION', `reading ${this.account.name}'s units as ${this.account.name} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`, { details: { user: this.account.name } });
      return parseDropInDump(r.stdout);
    })();
    return this.cache;
  }

  async list(): Promise<string[]> {
    return [...(await this.readDropIns()).keys()].sort();
  }

  private async dropIn(name: string): Promise<UnitFile | undefined> {
    const text = (await this.readDropIns()).get(name);
    try {
      return text === undefined ? undefined : parseUnit(text);
    } catch {
      return undefined;
    }
  }

  /** One `systemctl --user -M NAME@ show` for all units. */
  private async show(names: string[]): Promise<Map<string, Record<string, string>>> {
    if (names.length === 0) return new Map();
    const r = await run(['systemctl', '--user', '-M', `${this.account.name}@`, 'show', '-p', 'Id,ActiveState,SubState,MainPID,UnitFileState', '--', ...names.map((n) => unitName(n))], { reject: false, timeoutMs: 30_000 });
    if (r.exitCode !== 0 && r.stdout.trim() === '') {
      throw new BerthError('FAILED_PRECONDITION', `cannot reach ${this.account.name}'s systemd user manager: ${r.stderr.trim()} (is it running? \`loginctl enable-linger ${this.account.name}\` keeps it running)`, { details: { user: this.account.name } });
    }
    return parseShowBlocks(r.stdout);
  }

  private async requireKnown(name: string): Promise<void> {
    if (!isValidMachineName(name) || !(await this.list()).includes(name)) {
      throw new BerthError('NOT_FOUND', `no such container of user ${this.account.name}: ${name}`, { details: { name, user: this.account.name } });
    }
  }

  async state(name: string): Promise<ContainerState> {
    await this.requireKnown(name);
    const p = (await this.show([name])).get(unitName(name)) ?? {};
    const pid = Number(p.MainPID ?? 0);
    return { name, runtime: this.name, unit: unitName(name), status: statusOf(p.ActiveState), ...(pid > 0 ? { pid } : {}) };
  }

  async summaries(): Promise<ContainerSummary[]> {
    const names = await this.list();
    const props = await this.show(names);
    return Promise.all(names.map(async (n) => {
      const p = props.get(unitName(n)) ?? {};
      const u = await this.dropIn(n);
      const pid = Number(p.MainPID ?? 0);
      const image = u ? imageOfDropIn(u) : undefined;
      return {
        name: n, runtime: this.name, unit: unitName(n), status: statusOf(p.ActiveState), ...(pid > 0 ? { pid } : {}),
        ...(image ? { image } : {}), command: u ? commandOfDropIn(u) : [], activeState: p.ActiveState ?? 'inactive', subState: p.SubState ?? 'dead',
        ...(p.UnitFileState ? { enabled: p.UnitFileState } : {}),
      };
    }));
  }

  async *logs(name: string, opts: RuntimeLogsOptions = {}): AsyncIterable<string> {
    await this.requireKnown(name);
    const args = [`_SYSTEMD_USER_UNIT=${unitName(name)}`, `_UID=${this.account.uid}`, '-o', 'cat', '--no-pager', '-q'];
    if (opts.lines !== undefined) args.push('-n', String(opts.lines));
    if (opts.follow) args.push('-f');
    if (opts.since) args.push('--since', opts.since);
    const c = spawn('journalctl', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      for await (const line of createInterface({ input: c.stdout })) yield line;
    } finally {
      if (c.exitCode === null) c.kill();
    }
  }

  async gcRoots(): Promise<GcRoots> {
    return gcRootsOfDropIns(await Promise.all((await this.list()).map((n) => this.dropIn(n))));
  }

  async ports(name: string): Promise<PortMapping[]> {
    await this.requireKnown(name);
    const u = await this.dropIn(name);
    return u ? portsOfDropIn(u) : [];
  }
}
