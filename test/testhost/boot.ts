/**
 * @module testhost/boot
 * bootTestHost(): validates options, claims the name (cleaning up after a crashed run of
 * the same name), writes the preset into a fresh state directory and boots.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../../src/base/errors.ts';
import { testHostCgroupDirs } from './cgroup.ts';
import { TestHostImpl } from './host.ts';
import { NAME_RE, presetText } from './nspawn-args.ts';
import { claimName, releaseName } from './registry.ts';
import type { TestHost, TestHostOptions } from './types.ts';

function validate(opts: TestHostOptions): void {
  if (!NAME_RE.test(opts.name)) {
    throw new BerthError('INVALID_ARGUMENT', `invalid test host name "${opts.name}": use [a-z0-9-], at most 48 characters`);
  }
  if (process.getuid?.() !== 0) throw new BerthError('PERMISSION_DENIED', 'a test host needs root');
  const dirs = [
    ...(opts.persistentMachinesDir ? [opts.persistentMachinesDir] : []),
    ...(opts.persistentDirs ?? []).map((d) => d.host),
  ];
  for (const d of dirs) mkdirSync(d, { recursive: true });
  for (const b of opts.binds ?? []) {
    if (!existsSync(b.host)) throw new BerthError('NOT_FOUND', `test host bind source ${b.host} does not exist`);
  }
}

/** Boots systemd in an nspawn container sharing the host's /usr; resolves once it is running or degraded. */
export async function bootTestHost(opts: TestHostOptions): Promise<TestHost> {
  validate(opts);
  const cgroupDirs = testHostCgroupDirs(opts.name);
  const stateDir = mkdtempSync(join(tmpdir(), `berth-testhost-${opts.name}-`));
  try {
    await claimName(opts.name, stateDir, cgroupDirs);
  } catch (e) {
    rmSync(stateDir, { recursive: true, force: true });
    throw e;
  }
  mkdirSync(join(stateDir, 'preset'));
  writeFileSync(join(stateDir, 'preset', '99-berth-testhost.preset'), presetText(opts));
  const host = new TestHostImpl(opts, stateDir, cgroupDirs);
  try {
    await host.boot();
  } catch (e) {
    releaseName(opts.name);
    throw e;
  }
  return host;
}
