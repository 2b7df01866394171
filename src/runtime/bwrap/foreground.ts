/**
 * @module runtime/bwrap/foreground
 * The record of a foreground run that has no unit (AttachedRun mode 'child'): berth runs the
 * sandbox as its own child, so systemd knows nothing of it, and other berth processes (`ps`,
 * `stop`, `exec`, `start` refusing) learn of it from `sandboxes/NAME/attached`:
 *   "PID STARTTIME\n"
 * PID is the sandbox's first process (unshare → launcher → bwrap: one PID, as a unit's
 * MainPID), STARTTIME field 22 of its /proc/PID/stat, so a reused PID never passes for it.
 * The file lives below the user's 0700 sandboxes directory and only names a process; a
 * record that does not parse, or whose process is gone or a zombie, means "not running".
 */
import { readFile } from 'node:fs/promises';

export interface ForegroundRecord {
  pid: number;
  startTime: string;
}

export const RECORD_FILE = 'attached';

/** "PID STARTTIME" → the record, or undefined for anything else. */
export function parseRecord(text: string): ForegroundRecord | undefined {
  const m = /^([1-9]\d{0,9}) (\d{1,20})\n?$/.exec(text);
  return m ? { pid: Number(m[1]), startTime: m[2]! } : undefined;
}

export const formatRecord = (r: ForegroundRecord): string => `${r.pid} ${r.startTime}\n`;

/** State letter and start time from /proc/PID/stat (the comm field may hold spaces and parentheses). */
export function parseProcStat(text: string): { state: string; startTime: string } | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = text.slice(close + 2).split(' ');
  // After "PID (comm) ": state is field 3, starttime field 22.
  return f.length > 19 && f[19] !== undefined && /^\d+$/.test(f[19]) ? { state: f[0]!, startTime: f[19] } : undefined;
}

export async function procStat(pid: number): Promise<{ state: string; startTime: string } | undefined> {
  return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''));
}

/** The recorded process, while it lives (not a zombie) and is the one recorded. */
export async function liveRecord(path: string): Promise<ForegroundRecord | undefined> {
  const r = parseRecord(await readFile(path, 'utf8').catch(() => ''));
  if (!r) return undefined;
  const st = await procStat(r.pid);
  return st && st.startTime === r.startTime && st.state !== 'Z' && st.state !== 'X' ? r : undefined;
}

/** The first child of pid (/proc/PID/task/PID/children), 0 when none. */
export async function firstChild(pid: number): Promise<number> {
  return Number((await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')).trim().split(/\s+/)[0] || 0);
}

/** The payload: the child of bwrap's init, which is the child of bwrap (the first process). */
export async function payloadOf(pid: number): Promise<number> {
  const init = await firstChild(pid);
  return init ? firstChild(init) : 0;
}

/** systemd's words for how a process ended, as ExecStopPost= records them: "RESULT CODE STATUS". */
export function exitWords(code: number | null, signal: NodeJS.Signals | null): string {
  if (code !== null) return code === 0 ? 'success exited 0' : `exit-code exited ${code}`;
  return `signal killed ${(signal ?? 'SIGKILL').replace(/^SIG/, '')}`;
}
