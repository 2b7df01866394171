/**
 * @module testhost/nspawn-args
 * Pure translation of TestHostOptions into the systemd-nspawn command line and the preset
 * file, following the measured recipe in the project notes: `-D / --volatile=yes` (a tmpfs
 * root with the host's /usr), `--private-network` (otherwise networkd would touch the real
 * NIC and veth creation fails), `--console=read-only` (`passive` never drains the pty and
 * PID 1 hangs at shutdown), `systemd.firstboot=off` (an empty /etc makes firstboot prompt)
 * and a `disable *` preset (otherwise preset-all enables every unit in the shared /usr).
 */
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import type { TestHostOptions } from './types.ts';

/** The repository checkout this file belongs to (bound at the same path inside). */
export const repoRoot: string = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** /etc pieces of the host a booted userland needs (PAM for machinectl shell, awk/iptables alternatives, ...). */
export const ETC_BINDS: readonly string[] = [
  '/etc/pam.d',
  '/etc/security',
  '/etc/alternatives',
  '/etc/login.defs',
  '/etc/nsswitch.conf',
  '/etc/skel',
];

/** Kernel-command-line style arguments for systemd inside. */
export const INIT_ARGS: readonly string[] = [
  'systemd.firstboot=off',
  // networkd pulls wait-online in through Also=; it would hold the boot for minutes.
  'systemd.mask=systemd-networkd-wait-online.service',
  'systemd.mask=console-getty.service',
];

export const NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/;

export function presetText(opts: Pick<TestHostOptions, 'networkd'>): string {
  const lines = ['# berth test host: enable only what the tests need'];
  if (opts.networkd !== false) lines.push('enable systemd-networkd.service', 'enable systemd-networkd.socket');
  lines.push('enable machines.target', 'disable *', '');
  return lines.join('\n');
}

function bindArg(host: string, target: string | undefined, ro: boolean | undefined): string {
  for (const p of [host, target ?? '']) {
    if (p.includes(':')) throw new Error(`test host bind path must not contain ':': ${p}`);
  }
  const spec = target && target !== host ? `${host}:${target}` : host;
  return `${ro ? '--bind-ro' : '--bind'}=${spec}`;
}

/** The full systemd-nspawn argv (without the cgroup-joining wrapper). */
export function nspawnArgv(opts: TestHostOptions, presetDir: string): string[] {
  const argv = [
    'systemd-nspawn',
    '--keep-unit',
    '--register=no',
    '-D', '/',
    '--volatile=yes',
    `--machine=${opts.name}`,
    `--hostname=${opts.name}`,
    '--private-network',
    '--console=read-only',
    bindArg(presetDir, '/etc/systemd/system-preset', true),
    ...ETC_BINDS.map((p) => bindArg(p, p, true)),
    bindArg(repoRoot, repoRoot, false),
  ];
  if (opts.persistentMachinesDir) argv.push(bindArg(opts.persistentMachinesDir, '/var/lib/machines', false));
  for (const d of opts.persistentDirs ?? []) argv.push(bindArg(d.host, d.target, false));
  for (const b of opts.binds ?? []) argv.push(bindArg(b.host, b.target, b.ro));
  argv.push('-b', ...INIT_ARGS);
  return argv;
}
