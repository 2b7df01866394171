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

test('tty: a layer line shows bytes downloaded and the unpack state side by side', () => {
  const { out, text } = fakeOut(200);
  const p = createProgress(out, 'tty');
  p.onEvent({ type: 'resolved', name: 'x', digest: D, platform: 'linux/amd64', layers: 1, totalBytes: 50_000_000, layerDigests: [{ digest: D, size: 50_000_000 }] });
  p.onEvent({ type: 'layer-start', digest: D, size: 50_000_000, offset: 0 });
  p.onEvent({ type: 'layer-progress', digest: D, bytes: 12_000_000 });
  p.onEvent({ type: 'layer-unpack', digest: D, state: 'extracting', bytes: 31_200_000 });
  p.finish();
  assert.match(text(), /abababababab: Downloading {2}12\.0MB\/50\.0MB.* {2}\| Extracting 31\.2MB/);
  const q = fakeOut(200);
  const p2 = createProgress(q.out, 'tty');
  p2.onEvent({ type: 'layer-downloaded', digest: D, size: 10 });
  p2.onEvent({ type: 'layer-unpack', digest: D, state: 'waiting', bytes: 0 });
  p2.finish();
  assert.match(q.text(), /abababababab: Download complete {2}\| Waiting to extract/);
});
