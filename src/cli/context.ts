/**
 * @module cli/context
 * Where berth keeps things: `--root DIR` beats `BERTH_ROOT`, which beats the default
 * (/var/lib/berth for root, $XDG_DATA_HOME/berth for other users, as Podman splits its
 * root and rootless stores).
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { GlobalOptions } from './program.ts';

export function storeRoot(g: GlobalOptions): string {
  if (g.root) return resolve(g.root);
  if (process.env.BERTH_ROOT) return resolve(process.env.BERTH_ROOT);
  if (process.getuid?.() === 0) return '/var/lib/berth';
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'berth');
}

export function isTTY(s: NodeJS.WriteStream): boolean {
  return s.isTTY === true && process.env.TERM !== 'dumb';
}
