/**
 * @module testhost/process
 * The systemd-nspawn process of a test host: starting it from the test host's own cgroups,
 * finding the leader (systemd, the nspawn child in another PID namespace; the first child
 * is a short-lived "outer child" in ours), waiting for `systemctl is-system-running` and
 * waiting for nspawn to exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../../src/base/exec.ts';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface NspawnProcess {
  child: ChildProcess;
  pid: number;
  /** Settles with nspawn's exit; `exit` is set once it has. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

// Join every cgroup first, then become nspawn: it must be born in testhost.NAME.
const WRAPPER =
  'for f in $TESTHOST_CGROUP_PROCS; do echo $$ > "$f" || exit 111; done; unset TESTHOST_CGROUP_PROCS; exec "$@"';

/** Starts argv (systemd-nspawn ...) with its output appended to consolePath. */
export function spawnNspawn(argv: readonly string[], cgroupProcs: readonly string[], consolePath: string): NspawnProcess {
  const fd = openSync(consolePath, 'a');
  let child: ChildProcess;
  try {
    child = spawn('sh', ['-c', WRAPPER, 'testhost', ...argv], {
      stdio: ['ignore', fd, fd],
      // SYSTEMD_SECCOMP=0: the test host itself runs without nspawn's seccomp filter, like
      // systemd on a real host. Machines nested inside still get theirs (services do not
      // inherit this variable), and berth exec can copy it (PTRACE_SECCOMP_GET_FILTER
      // refuses a caller that is itself under seccomp).
      env: { PATH: process.env.PATH || DEFAULT_PATH, TESTHOST_CGROUP_PROCS: cgroupProcs.join(' '), SYSTEMD_SECCOMP: '0' },
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error('cannot start systemd-nspawn');
  const proc: NspawnProcess = {
    child,
    pid: child.pid,
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        proc.exit = { code, signal };
        resolve(proc.exit);
      });
    }),
  };
  // The test host must not keep the test process's event loop alive by itself.
  child.unref();
  return proc;
}

function pidNs(pid: number | 'self'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
      out.push(...text.split(' ').filter(Boolean).map(Number));
    }
  } catch {
    /* gone */
  }
  return out;
}

/** The nspawn child living in a different PID namespace, or undefined if not there yet. */
export function findLeader(nspawnPid: number): number | undefined {
  const ours = pidNs('self');
  for (const c of children(nspawnPid)) {
    const ns = pidNs(c);
    if (ns && ns !== ours) return c;
  }
  return undefined;
}

export async function waitLeader(proc: NspawnProcess, deadline: number): Promise<number> {
  for (;;) {
    const leader = findLeader(proc.pid);
    if (leader !== undefined) return leader;
    if (proc.exit) throw new Error(`systemd-nspawn exited (${proc.exit.code ?? proc.exit.signal}) before the container started`);
    if (Date.now() > deadline) throw new Error('no container leader process appeared');
    await sleep(20);
  }
}

/** Polls `systemctl is-system-running` inside until running/degraded; returns that state. */
export async function waitRunning(proc: NspawnProcess, leader: number, deadline: number): Promise<{ state: string; failed: string[] }> {
  let state = '';
  for (;;) {
    if (proc.exit) throw new Error(`systemd-nspawn exited (${proc.exit.code ?? proc.exit.signal}) during boot, last state "${state}"`);
    const r = await run(['nsenter', '-t', String(leader), '-a', 'systemctl', 'is-system-running'], {
      reject: false,
      timeoutMs: 5000,
    });
    state = r.stdout.trim() || r.stderr.trim().split('\n').pop() || '';
    if (state === 'running') return { state, failed: [] };
    if (state === 'degraded') {
      const f = await run(['nsenter', '-t', String(leader), '-a', 'systemctl', 'list-units', '--failed', '--plain', '--no-legend'], {
        reject: false,
      });
      return { state, failed: f.stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean) };
    }
    if (Date.now() > deadline) throw new Error(`boot did not finish: systemctl is-system-running says "${state}"`);
    await sleep(100);
  }
}

/** Waits for nspawn's exit; false if the deadline passed first. */
export async function waitExit(proc: NspawnProcess, timeoutMs: number): Promise<boolean> {
  if (proc.exit) return true;
  const ac = new AbortController();
  const timedOut = sleep(timeoutMs, 'timeout', { signal: ac.signal }).catch(() => 'aborted');
  const r = await Promise.race([proc.exited.then(() => 'exited'), timedOut]);
  ac.abort();
  return r === 'exited';
}

/** Exists and is not a zombie (an exited nspawn stays a zombie until node reaps it). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
  } catch {
    return false;
  }
}

/** Blocking sleep, for process 'exit' handlers where nothing asynchronous runs any more. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Processes in the test host's PID namespace that are not in its cgroups: what exec()
 * (nsenter) started and is still running. systemd-shutdown cannot reap them (their parent
 * is nsenter, outside), and waits ~10 s for them at power-off.
 */
export function strayPids(leader: number, cgroupMarker: string): number[] {
  const ns = pidNs(leader);
  if (!ns) return [];
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === leader || pidNs(pid) !== ns) continue;
    try {
      if (!readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(cgroupMarker)) out.push(pid);
    } catch {
      /* gone */
    }
  }
  return out;
}
