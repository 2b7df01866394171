/**
 * @module runtime/nspawn/attach-warm
 * Pays the kernel's wait for the first cgroup migration of a unit start ahead of time.
 *
 * Every write to a `cgroup.procs` file takes the kernel's global cgroup_threadgroup_rwsem
 * for writing (unless the cgroup2 mount has `favordynmods`). That lock is a percpu rwsem
 * whose writer first waits for an RCU grace period when no writer has held it for a grace
 * period or so (rcu_sync). When systemd starts a unit it forks the first process and
 * moves it into the unit's cgroup from PID 1's main loop, so that wait, 5-25 ms here, sits
 * in every `run -d` and `start`, between the job's start and the first Exec command. A
 * shell shows it: the first write after a quiet spell took 5-21 ms, a second one 5-10 ms
 * later 0.1 ms, one 20 ms later the full wait again.
 *
 * Decision: when a unit is about to start, berth moves its own process into the cgroup it
 * already is in (`0` into its own cgroup.procs). The kernel takes the lock, finds nothing
 * to migrate and releases it: nothing changes but the lock's mode, and the grace period
 * runs on a thread-pool thread while berth writes the machine's files and systemd loads
 * the unit, so PID 1's move of the new process finds the lock warm. Measured in a test
 * host, 25-30 interleaved `run -d` each: the start (StartUnit to active) 52.6 → 38.1 ms
 * median, the whole command 148 → 135 ms. A write to a missing pid would not do: the
 * kernel looks the task up before it takes the lock.
 *
 * Only root, only cgroup2 (the unified or hybrid layout), only when berth's own cgroup is
 * inside the mount berth sees (not a path above its cgroup namespace's root). Any failure
 * (EACCES, EBUSY, ENOENT) is ignored: the start then pays the wait, as before.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';

/**
 * The cgroup.procs file of the cgroup2 path in /proc/self/cgroup's text ("0::/PATH"),
 * under mount; undefined without a cgroup2 line or when the path leads outside it. Pure.
 */
export function ownProcsFile(procSelfCgroup: string, mount: string): string | undefined {
  const path = /^0::(\/.*)$/m.exec(procSelfCgroup)?.[1];
  if (path === undefined || path.split('/').some((p) => p === '..' || p === '.')) return undefined;
  return `${mount}${path === '/' ? '' : path}/cgroup.procs`;
}

/** Where cgroup2 is mounted: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid). */
function cgroup2Mount(): string | undefined {
  if (existsSync('/sys/fs/cgroup/cgroup.procs')) return '/sys/fs/cgroup';
  if (existsSync('/sys/fs/cgroup/unified/cgroup.procs')) return '/sys/fs/cgroup/unified';
  return undefined;
}

/** berth's own cgroup.procs (berth never moves itself elsewhere), found once per process; null: none to write. */
let procsFile: string | null | undefined;
function ownProcs(): string | null {
  if (procsFile === undefined) {
    try {
      const mount = cgroup2Mount();
      procsFile = (mount === undefined ? undefined : ownProcsFile(readFileSync('/proc/self/cgroup', 'utf8'), mount)) ?? null;
    } catch {
      procsFile = null;
    }
  }
  return procsFile;
}

/**
 * Starts the no-op self-migration and returns at once; never throws, and never fails the
 * caller. A second call while the lock is warm costs ~0.1 ms.
 */
export function warmCgroupAttach(): void {
  if (process.geteuid?.() !== 0) return;
  const file = ownProcs();
  if (file !== null) void writeFile(file, '0').catch(() => {});
}
