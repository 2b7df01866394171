/**
 * @module network/tools
 * The host programs networking runs, checked up front so that a missing one is a clear
 * error naming the Debian package, before anything is written.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { BerthError } from '../base/errors.ts';

// sysctl: the zone unit's ExecStartPre=; a machine's own namespace needs only ip (and nft with ports).
const TOOLS: Record<string, string> = { ip: 'iproute2', nft: 'nftables', sysctl: 'procps', dnsmasq: 'dnsmasq-base' };

function onPath(cmd: string): boolean {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  return dirs.some((d) => {
    try {
      accessSync(`${d}/${cmd}`, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Throws FAILED_PRECONDITION naming the package of the first missing tool. */
export function requireTools(cmds: readonly string[] = Object.keys(TOOLS)): void {
  const missing = cmds.filter((c) => !onPath(c));
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((c) => TOOLS[c] ?? c))];
    throw new BerthError('FAILED_PRECONDITION', `networking needs ${missing.join(', ')}, which ${missing.length > 1 ? 'are' : 'is'} not installed (apt-get install ${pkgs.join(' ')}); or use --network=private|host`, { details: { missing } });
  }
}

/** sd_booted(): systemd is PID 1. */
export function systemdRunning(): boolean {
  return existsSync('/run/systemd/system');
}
