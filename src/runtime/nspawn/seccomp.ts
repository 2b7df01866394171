/**
 * @module runtime/nspawn/seccomp
 * nspawn's seccomp filter, compiled once per nspawn build instead of at every start
 * (native/seccomp.c has the whole design and its checks).
 *
 * systemd-nspawn 252 compiles its syscall allow list with libseccomp for three
 * architectures at every start: ~70 ms of the ~120 ms nspawn takes to run `true`. crun
 * caches its compiled filters for the same reason. Here:
 * - `berth-helper seccomp-probe` runs nspawn once on an empty root and copies the programs
 *   it loaded into /run/berth/seccomp/nspawn.cache, with the identity of every file nspawn
 *   had mapped and the kernel's. berth runs it at create time when the cache is missing
 *   (after a boot, or after `nspawn-start` found it stale and removed it).
 * - a machine's ExecStart= (and an attached `run`) go through `berth-helper nspawn-start`,
 *   which uses the cache only when it is current and the machine's settings are the ones
 *   berth writes; then nspawn runs with SYSTEMD_SECCOMP=0 and the machine's PID 1,
 *   berth-helper as `seccomp-init`, loads exactly those programs before it execs the
 *   forwarding init. In every other case nspawn filters as it always does.
 * The programs a machine gets are byte-identical either way (test/integration/seccomp-cache).
 * The cache is derived state on a tmpfs: losing it costs one slower start, never a filter.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runHelper } from '../../native/index.ts';
import { trace } from '../../base/trace.ts';
import { writeFileAtomic } from '../../base/fs.ts';
import { parseUnit, serializeUnit } from '../../unit/index.ts';
import type { MachinePaths } from './paths.ts';
import { startDropIn } from './translate-dropins.ts';
import { SECCOMP_FILTER_TARGET, SECCOMP_INIT_TARGET, machineFilterFile, nspawnBinary, seccompDir, seccompStart, type SeccompStart } from './seccomp-start.ts';

export * from './seccomp-start.ts';

let ensured = false;

/**
 * Makes the cache when it is missing (~130 ms, once per boot and nspawn build; concurrent
 * creates wait for one probe under its lock). A probe that fails leaves a marker, so a
 * host where it cannot work does not pay for it at every create (it is tried again after an hour); the machine then starts
 * with nspawn's own filter. Never throws: the cache only saves time.
 */
export async function ensureFilterCache(helper: string): Promise<void> {
  if (ensured) return;
  ensured = true;
  const nspawn = nspawnBinary();
  const cache = `${seccompDir()}/nspawn.cache`;
  if (nspawn === undefined || existsSync(cache) || recentFailure(`${cache}.failed`)) return;
  try {
    await runHelper(['seccomp-probe', cache, nspawn], { context: 'compiling nspawn\'s seccomp filter', timeoutMs: 60_000 });
    trace('create: seccomp filter cached');
  } catch (e) {
    trace(`create: seccomp probe failed: ${(e as Error).message}`);
    await writeFile(`${cache}.failed`, `${(e as Error).message}\n`, { mode: 0o644 }).catch(() => {});
  }
}

/** A probe failed less than an hour ago: do not pay for another at every create. */
function recentFailure(marker: string): boolean {
  const st = statSync(marker, { throwIfNoEntry: false });
  return st !== undefined && Date.now() - st.mtimeMs < 3600_000;
}

/**
 * A renamed machine's start files name it: the .nspawn bind of its filter file and
 * 40-berth-start.conf. Both are rewritten for the new name (p: the new paths; mount: the
 * new root's nspawn-start --mount words). Returns the start to use for the machine's other
 * drop-ins (a zone's 60-berth-network.conf), or undefined when its settings do not use
 * seccomp-init.
 */
export async function renameStartFiles(p: MachinePaths, from: string, helper: string, mount: readonly string[]): Promise<SeccompStart | undefined> {
  const u = parseUnit(await readFile(p.nspawnFile, 'utf8'));
  const binds = u.getAll('Files', 'BindReadOnly');
  if (!binds.some((v) => v.endsWith(`:${SECCOMP_INIT_TARGET}`))) return undefined;
  const found = seccompStart(p.name, helper);
  const start = found && { ...found, mount };
  const old = `${machineFilterFile(from)}:${SECCOMP_FILTER_TARGET}`;
  if (binds.includes(old)) {
    u.remove('Files', 'BindReadOnly');
    for (const v of binds) u.add('Files', 'BindReadOnly', v === old ? `${machineFilterFile(p.name)}:${SECCOMP_FILTER_TARGET}` : v);
    await writeFileAtomic(p.nspawnFile, serializeUnit(u));
  }
  const conf = join(p.dropInDir, '40-berth-start.conf');
  if (start !== undefined && existsSync(conf)) await writeFileAtomic(conf, serializeUnit(startDropIn(p.name, start)));
  await rm(machineFilterFile(from), { force: true });
  return start;
}
