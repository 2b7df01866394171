/**
 * @module cli/progress
 * Renders pull events. On a terminal: one line per layer, redrawn in place, with bytes
 * downloaded, total and rate, and the unpack state next to it (layers are unpacked while
 * they download: "Extracting 31.2MB" counts the decompressed bytes written so far), the
 * way `docker pull` / `podman pull` users expect. Otherwise: plain log lines, one per
 * state change (no redraws, nothing per chunk), so CI logs stay readable. --quiet: nothing
 * but the final digest, printed by the caller.
 */
import type { PullEvent } from '../image/pull.ts';

export function humanBytes(n: number): string {
  if (n < 1000) return `${n}B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 2 : 1)}${units[i]}`;
}

interface Row {
  id: string;
  status: string;
  bytes: number;
  total: number;
  startedAt: number;
  /** Unpack state shown after the download part ('' until the unpack starts). */
  unpack: string;
}

export interface ProgressRenderer {
  onEvent(e: PullEvent): void;
  finish(): void;
}

export function createProgress(out: NodeJS.WriteStream, mode: 'tty' | 'plain' | 'quiet'): ProgressRenderer {
  if (mode === 'quiet') return { onEvent() {}, finish() {} };
  if (mode === 'plain') return plainProgress(out);
  return ttyProgress(out);
}

function short(d: string): string {
  return d.slice(d.indexOf(':') + 1, d.indexOf(':') + 13);
}

function plainProgress(out: NodeJS.WriteStream): ProgressRenderer {
  return {
    onEvent(e) {
      switch (e.type) {
        case 'resolved':
          out.write(`Resolved ${e.name} to ${e.digest} (${e.platform}, ${e.layers} layers, ${humanBytes(e.totalBytes)})\n`);
          break;
        case 'layer-downloaded':
          out.write(`${short(e.digest)}: Download complete (${humanBytes(e.size)})\n`);
          break;
        case 'layer-done':
          out.write(`${short(e.digest)}: ${e.status} (${humanBytes(e.size)}${e.ms !== undefined ? ` in ${(e.ms / 1000).toFixed(2)}s` : ''})\n`);
          break;
        case 'retry':
          out.write(`${e.digest ? `${short(e.digest)}: ` : ''}retrying (attempt ${e.attempt}): ${e.reason}\n`);
          break;
        default:
          break;
      }
    },
    finish() {},
  };
}

function ttyProgress(out: NodeJS.WriteStream): ProgressRenderer {
  const rows: Row[] = [];
  const byId = new Map<string, Row>();
  let drawn = 0;
  let finished = false;
  let timer: NodeJS.Timeout | undefined;
  const line = (r: Row): string => {
    const el = (Date.now() - r.startedAt) / 1000;
    const rate = el > 0.2 && r.bytes > 0 ? `  ${humanBytes(Math.round(r.bytes / el))}/s` : '';
    const amount = r.total > 0 && r.status.startsWith('Downloading') ? `  ${humanBytes(r.bytes)}/${humanBytes(r.total)}${rate}` : '';
    const text = `${r.id}: ${r.status}${amount}${r.unpack ? `  | ${r.unpack}` : ''}`;
    const width = out.columns || 120; // a pty may report 0 columns
    return text.length > width - 1 ? text.slice(0, width - 1) : text;
  };
  const draw = () => {
    if (drawn > 0) out.write(`\x1b[${drawn}A`);
    for (const r of rows) out.write(`\x1b[2K${line(r)}\n`);
    drawn = rows.length;
  };
  const row = (digest: string, total: number): Row => {
    let r = byId.get(digest);
    if (!r) {
      r = { id: short(digest), status: 'Waiting', bytes: 0, total, startedAt: Date.now(), unpack: '' };
      byId.set(digest, r);
      rows.push(r);
    }
    return r;
  };
  return {
    onEvent(e) {
      switch (e.type) {
        case 'resolved':
          out.write(`Resolved ${e.name} to ${e.digest} (${e.platform})\n`);
          for (const l of e.layerDigests) row(l.digest, l.size);
          timer ??= setInterval(draw, 100);
          timer.unref();
          break;
        case 'layer-start': {
          const r = row(e.digest, e.size);
          r.status = e.offset > 0 ? 'Downloading (resumed)' : 'Downloading';
          r.bytes = e.offset;
          r.startedAt = Date.now();
          break;
        }
        case 'layer-progress':
          row(e.digest, 0).bytes = e.bytes;
          break;
        case 'layer-downloaded':
          row(e.digest, e.size).status = 'Download complete';
          break;
        case 'layer-unpack':
          row(e.digest, 0).unpack = e.state === 'waiting' ? 'Waiting to extract' : `Extracting ${humanBytes(e.bytes)}`;
          break;
        case 'layer-done': {
          const r = row(e.digest, e.size);
          r.status = e.status;
          r.unpack = '';
          break;
        }
        case 'retry':
          if (e.digest) row(e.digest, 0).status = `Retrying (${e.reason})`;
          break;
        default:
          break;
      }
    },
    finish() {
      if (finished) return;
      finished = true;
      if (timer) clearInterval(timer);
      if (rows.length) draw();
    },
  };
}
