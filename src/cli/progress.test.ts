import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress, humanBytes } from './progress.ts';
import type { Digest } from '../base/digest.ts';

const D = `sha256:${'ab'.repeat(32)}` as Digest;

function fakeOut(columns: number): { out: NodeJS.WriteStream; text: () => string } {
  let buf = '';
  const out = { columns, isTTY: true, write: (s: string) => { buf += s; return true; } } as unknown as NodeJS.WriteStream;
  return { out, text: () => buf.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '') };
}

test('humanBytes uses decimal units like docker', () => {
  assert.equal(humanBytes(999), '999B');
  assert.equal(humanBytes(1_100_000), '1.10MB');
  assert.equal(humanBytes(51_133_191), '51.1MB');
});

test('tty: one line per layer, whole words even when the pty reports 0 columns, drawn once at the end', () => {
  const { out, text } = fakeOut(0);
  const p = createProgress(out, 'tty');
  p.onEvent({ type: 'resolved', name: 'x', digest: D, platform: 'linux/amd64', layers: 1, totalBytes: 10, layerDigests: [{ digest: D, size: 10 }] });
  p.onEvent({ type: 'layer-done', digest: D, size: 10, status: 'Pull complete' });
  p.finish();
  p.finish();
  const lines = text().split('\n').filter(Boolean);
  assert.deepEqual(lines, ['Resolved x to ' + D + ' (linux/amd64)', 'abababababab: Pull complete']);
});

test('plain: log lines, no escape codes', () => {
  const { out } = fakeOut(80);
  let raw = '';
  (out as unknown as { write: (s: string) => boolean }).write = (s: string) => { raw += s; return true; };
  const p = createProgress(out, 'plain');
  p.onEvent({ type: 'retry', digest: D, attempt: 2, reason: 'connection reset' });
  p.onEvent({ type: 'layer-done', digest: D, size: 1_100_000, status: 'Pull complete', ms: 1500 });
  assert.equal(raw, 'abababababab: retrying (attempt 2): connection reset\nabababababab: Pull complete (1.10MB in 1.50s)\n');
});
