/**
 * @module testhost/cgroup
 * Each test host runs from its own cgroup `testhost.NAME` below the caller's cgroup, in
 * every writable hierarchy that matters: name=systemd (v1), the unified cgroup2 tree and
 * the memory controller (v1). `nspawn --keep-unit` puts the container below its own
 * cgroup (`…/payload`), so two test hosts started from the same cgroup would share one
 * payload tree; and systemd inside creates memory cgroups below its cgroup-namespace root,
 * which is ours. Everything here is synchronous and tolerant of already-gone cgroups.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = '/sys/fs/cgroup';

/** The caller's cgroup path per hierarchy key ('name=systemd', '' for cgroup2, 'memory', ...). */
export function callerCgroups(pid: number | 'self' = 'self'): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    for (const c of (m[1] ?? '').split(',')) out.set(c, m[2] ?? '/');
  }
  return out;
}

/** Mount points of the hierarchies a test host gets its own cgroup in, keyed like callerCgroups(). */
function hierarchies(): Array<{ key: string; mount: string; required: boolean }> {
  if (existsSync(join(ROOT, 'cgroup.controllers'))) return [{ key: '', mount: ROOT, required: true }];
  const list = [
    { key: 'name=systemd', mount: join(ROOT, 'systemd'), required: true },
    { key: '', mount: join(ROOT, 'unified'), required: false },
    { key: 'memory', mount: join(ROOT, 'memory'), required: false },
  ];
  return list.filter((h) => h.required || existsSync(join(h.mount, 'cgroup.procs')));
}

/** Absolute cgroup directories of test host `name`, one per hierarchy. */
export function testHostCgroupDirs(name: string): string[] {
  const own = callerCgroups();
  return hierarchies().map((h) => join(h.mount, own.get(h.key) ?? '/', `testhost.${name}`));
}

/** Creates the cgroups and returns the cgroup.procs files the nspawn process must join. */
export function createCgroups(dirs: readonly string[]): string[] {
  return dirs.map((dir) => {
    mkdirSync(dir, { recursive: true });
    return join(dir, 'cgroup.procs');
  });
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(dir, d.name));
  } catch {
    return [];
  }
}

function treePids(dir: string): number[] {
  let pids: number[] = [];
  try {
    pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
  for (const sub of subdirs(dir)) pids.push(...treePids(sub));
  return pids;
}

/** Every process in the cgroup trees (nspawn, systemd, services, nested machines). */
export function cgroupPids(dirs: readonly string[]): number[] {
  return [...new Set(dirs.flatMap(treePids))];
}

/** SIGKILLs everything in the cgroup trees (cgroup.kill where the kernel has it). */
export function killCgroups(dirs: readonly string[]): void {
  for (const dir of dirs) {
    const kill = join(dir, 'cgroup.kill');
    if (existsSync(kill)) {
      try {
        writeFileSync(kill, '1');
      } catch {
        /* fall through to per-pid kill */
      }
    }
  }
  for (const pid of cgroupPids(dirs)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

function rmdirTree(dir: string): string[] {
  const left: string[] = [];
  for (const sub of subdirs(dir)) left.push(...rmdirTree(sub));
  try {
    rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') left.push(dir);
  }
  return left;
}

/** Removes the (empty) cgroup trees; returns the directories that could not be removed. */
export function removeCgroups(dirs: readonly string[]): string[] {
  return dirs.flatMap(rmdirTree);
}

/** Kills what is left in the trees and removes them, retrying until `timeoutMs`. */
export async function destroyCgroups(dirs: readonly string[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (cgroupPids(dirs).length) killCgroups(dirs);
    const left = removeCgroups(dirs);
    if (!left.length) return;
    if (Date.now() > deadline) {
      throw new Error(`cannot remove cgroups ${left.join(' ')} (pids left: ${cgroupPids(dirs).join(' ') || 'none'})`);
    }
    await sleep(50);
  }
}

/** Whether any of the cgroup directories exists. */
export function cgroupsExist(dirs: readonly string[]): boolean {
  return dirs.some((d) => existsSync(d));
}
