/**
 * @module test/integration/machine-helpers
 * Shared setup for the machine-*.test.ts files: a test host whose /var/lib/berth and
 * /var/lib/machines are host ext4 directories (file-backed EROFS cannot read image files
 * on tmpfs: "Block device required"), the busybox fixture imported into berth's store,
 * and `berth(...)`, which runs the CLI inside the test host as a transient unit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { ExecResult } from '../../src/base/exec.ts';
import { buildImage } from '../fixtures/images.ts';
import { fixturesRoot } from '../fixtures/compress.ts';
import { repoRoot, useTestHost, type TestHost, type TestHostOptions } from '../testhost/index.ts';

export interface MachineHost {
  host: () => TestHost;
  berth: (args: string[], opts?: { reject?: boolean; timeoutMs?: number; input?: string }) => Promise<ExecResult>;
  sh: (script: string, opts?: { reject?: boolean }) => Promise<ExecResult>;
  /** Host directories bound into the test host. */
  dirs: { base: string; berth: string; machines: string; layout: string };
}

function berthArgv(): string[] {
  return [join(repoRoot, 'bin/berth')];
}

export interface MachineHostOptions extends Partial<TestHostOptions> {
  /**
   * Also persist /etc/systemd/system, /etc/systemd/nspawn and /etc/berth (the test host's /etc is a
   * fresh tmpfs each boot), so machines and `berth enable` survive host().reboot().
   */
  persistSystemdEtc?: boolean;
}

export function useMachineHost(name: string, extra: MachineHostOptions = {}): MachineHost {
  const base = mkdtempSync(join(tmpdir(), `berth-${name}-`));
  const dirs = { base, berth: join(base, 'berth'), machines: join(base, 'machines'), layout: join(base, 'layout') };
  let layout = '';
  const { persistSystemdEtc, ...opts } = extra;
  const etc = persistSystemdEtc
    ? [{ host: join(base, 'etc-system'), target: '/etc/systemd/system' }, { host: join(base, 'etc-nspawn'), target: '/etc/systemd/nspawn' },
      // network zones and machines' attachments (see src/network/names.ts)
      { host: join(base, 'etc-berth'), target: '/etc/berth' }]
    : [];
  const host = useTestHost({
    ...opts,
    name: `${name}-${process.pid}`,
    persistentMachinesDir: dirs.machines,
    persistentDirs: [{ host: dirs.berth, target: '/var/lib/berth' }, ...etc, ...(extra.persistentDirs ?? [])],
    binds: [{ host: fixturesRoot(), ro: true }, ...(extra.binds ?? [])],
  });
  after(() => rmSync(base, { recursive: true, force: true }));
  const argv = berthArgv();
  const berth: MachineHost['berth'] = async (args, opts = {}) => {
    if (!layout) {
      layout = (await buildImage('busybox')).layoutDir;
      await host().run([...argv, 'image', 'import', layout, 'busybox:latest'], {});
    }
    return host().run([...argv, ...args], { reject: opts.reject, timeoutMs: opts.timeoutMs ?? 60_000, input: opts.input });
  };
  const sh: MachineHost['sh'] = (script, opts = {}) => host().exec(['sh', '-c', script], { reject: opts.reject });
  return { host, berth, sh, dirs };
}
