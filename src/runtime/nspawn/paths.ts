/**
 * @module runtime/nspawn/paths
 * Where a machine lives. Everything is in systemd's standard places so an admin finds it:
 *
 *   /etc/systemd/nspawn/NAME.nspawn                              settings ([Exec] [Files] [Network])
 *   /etc/systemd/system/systemd-nspawn@NAME.service.d/50-*.conf  resource control (translator)
 *   /etc/systemd/system/systemd-nspawn@NAME.service.d/10-berth-rootfs.conf  rootfs assembly
 *   /var/lib/machines/NAME                                       the overlay root (mounted while running)
 *   /var/lib/machines/.berth-NAME/{upper,work}                   the machine's own layer
 *
 * The upper/work directories sit next to the mount point, on the filesystem that holds
 * /var/lib/machines (same place machinectl keeps images, kept across reboots, found by an
 * admin); the leading dot hides them from machined's image discovery. The layer snapshots
 * stay in berth's store (<root>/snapshots) and are shared by every machine.
 * `BERTH_SYSTEMD_ROOT` (tests only) prefixes the /etc and /var/lib/machines paths.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { validateMachineName } from '../../container/names.ts';

export interface MachinePaths {
  name: string;
  unit: string;
  nspawnFile: string;
  dropInDir: string;
  rootfsDropIn: string;
  rootDir: string;
  stateDir: string;
  upper: string;
  work: string;
}

function prefix(): string {
  return process.env.BERTH_SYSTEMD_ROOT ?? '';
}

export function nspawnDir(): string {
  return `${prefix()}/etc/systemd/nspawn`;
}

export function unitDir(): string {
  return `${prefix()}/etc/systemd/system`;
}

export function machinesDir(): string {
  return `${prefix()}/var/lib/machines`;
}

export function unitName(name: string): string {
  return `systemd-nspawn@${name}.service`;
}

export function machinePaths(name: string): MachinePaths {
  validateMachineName(name);
  const dropInDir = join(unitDir(), `${unitName(name)}.d`);
  const stateDir = join(machinesDir(), `.berth-${name}`);
  return {
    name,
    unit: unitName(name),
    nspawnFile: join(nspawnDir(), `${name}.nspawn`),
    dropInDir,
    rootfsDropIn: join(dropInDir, '10-berth-rootfs.conf'),
    rootDir: join(machinesDir(), name),
    stateDir,
    upper: join(stateDir, 'upper'),
    work: join(stateDir, 'work'),
  };
}

/** A .nspawn file is settings, a few KiB: anything bigger is not read. */
export const SETTINGS_MAX_BYTES = 1 << 20;

/**
 * Reads a settings file synchronously (ps and the UID pick read every .nspawn file), or
 * undefined when it is gone, not a regular file, or bigger than SETTINGS_MAX_BYTES. Opened
 * non-blocking, so a FIFO or device someone left in /etc/systemd/nspawn cannot hang `ps`
 * or every create (a symlink to a regular file is followed, as nspawn does).
 */
export function readSettingsFileSync(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > SETTINGS_MAX_BYTES) return undefined;
    const buf = Buffer.allocUnsafe(st.size + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > SETTINGS_MAX_BYTES) return undefined; // grew while being read
      if (n === buf.length) return undefined; // grew past its stat size: being rewritten
    }
    return buf.toString('utf8', 0, n);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}
