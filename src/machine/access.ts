/**
 * @module machine/access
 * exec and logs. exec runs `berth-helper exec` (native/exec.c), which confines the new
 * process the way the container's own are: the leader's cgroup in every hierarchy, all
 * its namespaces (user, mount, PID, network, IPC, UTS, cgroup), a chroot to its root, its
 * capability bounding set, no_new_privs and seccomp filters, every inherited fd closed;
 * the working directory and the user are resolved *inside* the container (never through
 * /proc/PID/root on the host). It works in any image — busybox or distroless, with no
 * systemd, bus or shell inside. The environment is the container's (Environment= of the
 * .nspawn file) plus `-e`; the user is `-u`, else the container's own (User= or the
 * setuser prefix of Parameters=). Logs are the unit's journal (what the payload printed:
 * `_TRANSPORT=stdout`), via journalctl.
 */
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { BerthError } from '../base/errors.ts';
import { forwardSignals } from '../base/exec.ts';
import { execArgs, helperError, helperPath, HELPER_EXIT } from '../native/index.ts';
import { parseNspawnWords, type UnitFile } from '../unit/index.ts';
import { machinePaths, payloadOf, showMachine } from '../runtime/nspawn/index.ts';
import { readSettings } from './query.ts';

export interface ExecOptions {
  env?: string[];
  cwd?: string;
  user?: string;
  tty?: boolean;
  stdin?: boolean;
}

/** The user the container's command runs as (User=, or the setuser prefix's argument), if not root. */
export function containerUser(u: UnitFile | undefined): string | undefined {
  const user = u?.get('Exec', 'User');
  if (user) return user;
  const p = u?.get('Exec', 'Parameters');
  if (!p) return undefined;
  try {
    return payloadOf(parseNspawnWords(p)).setuser;
  } catch {
    return undefined;
  }
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
  const cwd = opts.cwd ?? settings?.get('Exec', 'WorkingDirectory') ?? '/';
  const user = opts.user ?? containerUser(settings);
  const args = execArgs({ leader, user, cwd, errfd: 3, tty: opts.tty }, argv);
  const helper = helperPath();
  return new Promise((resolve, reject) => {
    const child = spawn(helper, args, { env, stdio: [opts.stdin || opts.tty ? 'inherit' : 'ignore', 'inherit', 'inherit', 'pipe'] });
    const errs: Buffer[] = [];
    child.stdio[3]?.on('data', (b: Buffer) => errs.push(b));
    // Signals reach the command through the helper (it forwards what a process sent it);
    // with -t, ^C is a byte on the command's own pseudo-terminal, so it is not forwarded.
    const done = forwardSignals(child, { tty: opts.tty });
    child.on('error', (e) => {
      done();
      reject(new BerthError('FAILED_PRECONDITION', `berth-helper: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, sig) => {
      done();
      const err = Buffer.concat(errs).toString('utf8');
      if (code === HELPER_EXIT.EXEC_SETUP && err.includes('berth-helper: ')) {
        reject(helperError(`exec in ${name}`, code, err));
        return;
      }
      resolve(code ?? 128 + (sig ? signalNumber(sig) : 0));
    });
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
