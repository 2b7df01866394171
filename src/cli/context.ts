/**
 * @module cli/context
 * Where berth keeps things: `--root DIR` beats `BERTH_ROOT`, which beats the default
 * (/var/lib/berth for root, $XDG_DATA_HOME/berth for other users, as Podman splits its
 * root and rootless stores).
 */
import { homedir } from 'node:os';
import type { GlobalOptions } from './program.ts';
import { storeRootFor } from '../manager/services.ts';

export function storeRoot(g: GlobalOptions): string {
  return storeRootFor({ root: g.root, env: process.env, uid: process.getuid?.() ?? 0, home: homedir() });
}

export function isTTY(s: NodeJS.WriteStream): boolean {
  return s.isTTY === true && process.env.TERM !== 'dumb';
}
