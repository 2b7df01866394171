/**
 * Empirical check against the real systemd-nspawn (opt-in: BERTH_TEST_NSPAWN=1, root,
 * static /bin/busybox): the .nspawn written for hostile values must deliver every argument,
 * environment value and bind path byte-exact (bind sources through the volume staging steps). The settings file sits next to the rootfs and
 * is read with --settings=trusted, so nothing on the host's /etc is touched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerSpec } from '../../container/spec.ts';
import { serializeUnit } from '../../unit/unit-file.ts';
import { toNspawnFile } from './translate.ts';
import { volumeSteps } from './translate-volumes.ts';

const enabled = process.env.BERTH_TEST_NSPAWN === '1' && process.getuid?.() === 0 && existsSync('/bin/busybox');
const D = `sha256:${'a'.repeat(64)}` as never;

for (const userns of ['host', 'private'] as const) test(`hostile args, env and bind paths arrive byte-exact in a real nspawn container (userns ${userns})`, { skip: !enabled }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-nspawn-'));
  try {
    const root = join(dir, 'bb');
    for (const d of ['bin', 'usr', 'etc', 'tmp']) mkdirSync(join(root, d), { recursive: true });
    copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
    for (const a of ['sh', 'printf', 'cat']) symlinkSync('busybox', join(root, 'bin', a));
    writeFileSync(join(root, 'etc/os-release'), 'ID=busybox\n');
    writeFileSync(join(root, 'bin/dump'), '#!/bin/sh\nfor a in "$@"; do printf "%s\\0" "$a"; done\nprintf "ENV\\0%s\\0%s\\0%s\\0" "$Q" "$P" "$B"\ncat /data/f /ro/f\n');
    chmodSync(join(root, 'bin/dump'), 0o755);
    const src = join(dir, 'src dir:1');
    mkdirSync(src);
    writeFileSync(join(src, 'f'), 'BIND-OK');
    const args = ['/bin/dump', '', 'a"b', "c'd", `e'"f`, '%n %% %i', '$X $$ ${X}', 'back\\slash\\', '\\', 'Boot=yes', 'tab\there', '#x', ';y', 'ü😀', ' lead', 'trail '];
    const env = ['Q=it\'s "quoted"', 'P=100% $HOME ${X} %n', 'B=C:\\dir\\'];
    const spec: ContainerSpec = {
      name: `bbt${process.pid}`, image: { ref: 'busybox', digest: D, id: D, chainIds: [] },
      process: { args, env, cwd: '/', tty: false, stdin: false },
      mounts: [
        { type: 'bind', source: src, target: '/data', readonly: false },
        { type: 'bind', source: src, target: '/ro', readonly: true },
        { type: 'tmpfs', target: '/scratch', options: 'size=1m' },
      ],
      readOnlyRoot: false, resources: {}, restart: 'no', boot: false, userns, network: { mode: 'host' }, labels: {},
    };
    const init = existsSync('/usr/bin/catatonit') ? '/usr/bin/catatonit' : undefined;
    writeFileSync(join(dir, 'bb.nspawn'), serializeUnit(toNspawnFile(spec, { initHostPath: init })));
    // the volumes are staged (nosuid,nodev) by the same argv the unit's ExecStartPre= runs
    const steps = volumeSteps(spec);
    const runSteps = (list: typeof steps.pre): void => {
      for (const st of list) {
        try {
          execFileSync(st.argv[0]!, st.argv.slice(1), { stdio: 'ignore', timeout: 10_000 });
        } catch (e) {
          if (!st.ignoreFailure) throw e;
        }
      }
    };
    runSteps(steps.pre);
    let out: string;
    try {
      out = execFileSync('systemd-nspawn', ['--keep-unit', '--register=no', '-q', '--settings=trusted', '--console=pipe', '-D', root], {
      stdio: ['ignore', 'pipe', 'ignore'], timeout: 30_000,
    }).toString('utf8');
    } finally {
      runSteps(steps.post);
    }
    const parts = out.split('\0');
    const n = args.length - 1; // "$@" has no argv[0]
    assert.deepEqual(parts.slice(0, n), args.slice(1));
    assert.deepEqual(parts.slice(n, n + 4), ['ENV', ...env.map((kv) => kv.slice(2))]);
    assert.equal(parts[n + 4], 'BIND-OKBIND-OK');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
