/**
 * @module cli/manager
 * Global flags and the process's environment → a Manager (see src/manager). Every command
 * about containers opens one here.
 */
import { homedir } from 'node:os';
import type { GlobalOptions } from './program.ts';
import { Manager } from '../manager/manager.ts';

export function openManager(g: GlobalOptions, opts: { asUser?: string } = {}): Promise<Manager> {
  return Manager.open({
    uid: process.getuid?.() ?? 0, home: homedir(), env: process.env, root: g.root, runtime: g.runtime, snapshotFormat: g.snapshotFormat,
    ...(opts.asUser !== undefined ? { asUser: opts.asUser } : {}),
    notice: (m) => process.stderr.write(`berth: ${m}\n`),
  });
}
