/**
 * @module machine/access
 * exec and logs. exec enters the running container with `nsenter -t LEADER -a` (all its
 * namespaces, including the user namespace), so it works in any image — busybox or
 * distroless, with no systemd, bus or shell inside. The environment is the container's
 * (Environment= of the .nspawn file) plus `-e`, the working directory `-w` or the
 * image's, the user resolved through the container's own /etc/passwd. Logs are the
 * unit's journal (what the payload printed: `_TRANSPORT=stdout`), via journalctl.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { BerthError } from '../base/errors.ts';
import { parseNspawnWords } from '../unit/index.ts';
import { machinePaths, showMachine } from '../runtime/nspawn/index.ts';
import { readSettings } from './query.ts';

export interface ExecOptions {
  env?: string[];
  cwd?: string;
  user?: string;
  tty?: boolean;
  stdin?: boolean;
}

async function lookupId(leader: number, file: 'passwd' | 'group', who: string): Promise<{ id: number; gid?: number }> {
  if (/^\d+$/.test(who)) return { id: Number(who) };
  const text = await readFile(`/proc/${leader}/root/etc/${file}`, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === who && f[2] !== undefined) return { id: Number(f[2]), gid: f[3] !== undefined && file === 'passwd' ? Number(f[3]) : undefined };
  }
  throw new BerthError('NOT_FOUND', `no ${file === 'passwd' ? 'user' : 'group'} "${who}" in the container's /etc/${file}`);
}

/**
 * nsenter found through the *host's* PATH: the child's environment is the container's,
 * whose PATH (e.g. `PATH=/` in a distroless image) says nothing about the host.
 */
function hostBinary(name: string): string {
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (d.startsWith('/') && existsSync(`${d}/${name}`)) return `${d}/${name}`;
  }
  return name;
}

/** Runs argv inside; resolves with its exit status (128+signal when killed). */
export async function execInMachine(name: string, argv: string[], opts: ExecOptions = {}): Promise<number> {
  if (argv.length === 0) throw new BerthError('INVALID_ARGUMENT', 'exec: no command given');
  const m = await showMachine(machinePaths(name).name);
  const leader = Number(m?.Leader ?? 0);
  if (!leader) throw new BerthError('FAILED_PRECONDITION', `container ${name} is not running`);
  const settings = await readSettings(name);
  const env: Record<string, string> = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', container: 'systemd-nspawn' };
  for (const v of settings?.getAll('Exec', 'Environment') ?? []) {
    for (const kv of parseNspawnWords(v)) {
      const i = kv.indexOf('=');
      if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
    }
  }
  for (const kv of opts.env ?? []) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const args = ['-t', String(leader), '-a'];
  const cwd = opts.cwd ?? settings?.get('Exec', 'WorkingDirectory') ?? '/';
  // nsenter opens --wd before entering the mount namespace: name it through the leader's root.
  args.push(`--wd=/proc/${leader}/root${cwd.startsWith('/') ? cwd : `/${cwd}`}`);
  const user = opts.user ?? settings?.get('Exec', 'User');
  if (user) {
    const [u = '', g] = user.split(':');
    const pw = await lookupId(leader, 'passwd', u);
    const gid = g !== undefined ? (await lookupId(leader, 'group', g)).id : pw.gid ?? pw.id;
    args.push(`--setuid=${pw.id}`, `--setgid=${gid}`);
  }
  args.push('--', ...argv);
  return new Promise((resolve, reject) => {
    const child = spawn(hostBinary('nsenter'), args, { env, stdio: [opts.stdin || opts.tty ? 'inherit' : 'ignore', 'inherit', 'inherit'] });
    child.on('error', (e) => reject(new BerthError('FAILED_PRECONDITION', `nsenter: ${e.message}`, { cause: e })));
    child.on('close', (code, sig) => resolve(code ?? 128 + (sig ? signalNumber(sig) : 0)));
  });
}

function signalNumber(sig: NodeJS.Signals): number {
  return osConstants.signals[sig] ?? 1;
}

export interface LogsOptions {
  follow?: boolean;
  lines?: number;
  since?: string;
}

/** Streams the container's output from the journal to stdout; resolves when journalctl ends. */
export async function streamLogs(name: string, opts: LogsOptions = {}): Promise<void> {
  const p = machinePaths(name);
  const args = ['-u', p.unit, '_TRANSPORT=stdout', '-o', 'cat', '--no-pager', '-q'];
  if (opts.follow) args.push('-f');
  if (opts.lines !== undefined) args.push('-n', String(opts.lines));
  else if (!opts.follow) args.push('-n', 'all');
  if (opts.since) args.push('--since', opts.since);
  await new Promise<void>((resolve, reject) => {
    const child = spawn('journalctl', args, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', (e) => reject(new BerthError('FAILED_PRECONDITION', `journalctl: ${e.message}`, { cause: e })));
    child.on('close', (code) => (code === 0 || code === null ? resolve() : reject(new BerthError('FAILED_PRECONDITION', `journalctl exited with ${code}`))));
  });
}
