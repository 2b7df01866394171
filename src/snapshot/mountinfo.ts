/**
 * @module snapshot/mountinfo
 * Reads /proc/self/mountinfo: which paths are mount points, with which fs type, source and
 * super options. The kernel's table is the only reference count berth keeps for EROFS
 * layer mounts (an image is "in use" while an overlay names it in lowerdir), so a crashed
 * berth never leaves a count that is wrong.
 */
import { readFile } from 'node:fs/promises';

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  superOptions: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    out.push({
      mountPoint: unescape(left[4] ?? ''),
      fsType: right[0] ?? '',
      source: unescape(right[1] ?? ''),
      superOptions: unescape(right[2] ?? ''),
    });
  }
  return out;
}

export async function readMounts(): Promise<MountEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** The last (topmost) mount at path, if any. */
export async function mountAt(path: string): Promise<MountEntry | undefined> {
  const all = await readMounts();
  return all.filter((m) => m.mountPoint === path).pop();
}
