/**
 * @module snapshot/erofs/native
 * The EROFS writer in berth-helper (`erofs-write`, native/erofs.c): the same parser, policy
 * and layout as the TypeScript writer beside it (the tests compare their images byte for
 * byte), run outside Node. For a big gzip layer the helper starts igzip itself and reads
 * its output through a pipe, so the decompressed tar never passes through berth's process;
 * the helper also hashes it (the diff ID). Without igzip (or zstd), Node inflates
 * (node:zlib, zstd-napi: decompress.ts) and streams the tar into the helper.
 *
 * Why native: a pull is one short process, and the TypeScript parser and writer run most
 * of a layer before V8 has optimised them (the 20,000-file bench layer: ~200 ms cold in
 * Node, ~50 ms in C), and Node moving 120 MB of tar through a pipe and a hash costs
 * ~130 ms of the Debian pull's main thread. The helper confines itself with seccomp once
 * its files are open (erofs.c): the layer is hostile input.
 *
 * BERTH_EROFS_WRITER=ts keeps the TypeScript writer (also used when the helper is absent).
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import { parseDigest, type Digest } from '../../base/digest.ts';
import { BerthError, type ErrorCode } from '../../base/errors.ts';
import { trace } from '../../base/trace.ts';
import { helperError } from '../../native/errors.ts';
import { helperPath } from '../../native/helper.ts';
import type { Compression } from '../../oci/media-types.ts';
import { createDecompressor, findIgzip, findZstd } from '../decompress.ts';
import type { ExtractPolicy } from '../types.ts';

export interface NativeResult {
  entries: number;
  inodes: number;
  imageBytes: number;
  tarBytes: number;
  diffId: Digest;
}

/** The helper to write images with, or null (BERTH_EROFS_WRITER=ts, or no helper built). */
export function nativeWriter(): string | null {
  if (process.env.BERTH_EROFS_WRITER === 'ts') return null;
  try {
    return helperPath();
  } catch {
    return null;
  }
}

/**
 * The child decompressor the helper should start for this layer, or null (Node inflates).
 * Whatever the layer's size: the helper forks it (~1 ms) and reads it without Node in the
 * way, so IGZIP_MIN_BYTES (the cost of igzip's output through Node) does not apply. The
 * 20,000-file bench layer is 0.9 MB of gzip but 40 MB of tar: node:zlib 107 ms, igzip ms.
 */
function childDecompressor(compression: Compression): string | null {
  if (compression === 'gzip') return findIgzip();
  if (compression === 'zstd') return findZstd();
  return null;
}

const CODES: Readonly<Record<string, ErrorCode>> = {
  HOSTILE_LAYER: 'HOSTILE_LAYER', CORRUPT: 'CORRUPT', UNSUPPORTED: 'UNSUPPORTED', NO_SPACE: 'NO_SPACE', IO: 'FAILED_PRECONDITION', DECOMPRESS: 'CORRUPT',
};

/** \xHH escapes back to bytes, read as UTF-8 (names are bytes; most are UTF-8). */
function unescape(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === 'x' && /^[0-9a-f]{2}$/.test(s.slice(i + 2, i + 4))) {
      bytes.push(parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
    } else {
      bytes.push(s.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The BerthError for a failed erofs-write (its one line on stderr). */
export function writerError(stderr: string, status: number | null, what: string, compression: Compression): BerthError {
  const line = stderr.trimEnd().split('\n').reverse().find((l) => l.startsWith('berth-helper: erofs-write: '));
  const m = line ? /^berth-helper: erofs-write: ([A-Z_]+)\t([^\t]*)\t(.*)$/.exec(line) : null;
  if (m && CODES[m[1] as string]) {
    const entry = m[2] ? unescape(m[2]) : undefined;
    let message = unescape(m[3] as string);
    if (m[1] === 'DECOMPRESS') {
      const why = stderr.split('\n').find((l) => l.trim() !== '' && !l.startsWith('berth-helper: '));
      message = `layer ${what}: cannot decompress (${compression}): ${why?.trim() ?? message}`;
    }
    return new BerthError(CODES[m[1] as string] as ErrorCode, message, { details: entry === undefined ? undefined : { entry } });
  }
  return helperError('berth-helper erofs-write', status ?? 1, stderr);
}

/** An input-side error that follows from the helper's exit (it stopped reading). */
function isConsequence(e: Error): boolean {
  return ['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED'].includes((e as NodeJS.ErrnoException).code ?? '');
}

/**
 * Writes the layer in `compressed` as an EROFS image at `imagePath` (must not exist; removed
 * on failure). Rejects with the helper's HOSTILE_LAYER / CORRUPT / UNSUPPORTED / NO_SPACE,
 * or with the input stream's own error; destroys `compressed` on failure.
 */
export async function writeLayerImageNative(
  helper: string,
  compressed: Readable,
  job: { imagePath: string; policy: ExtractPolicy; compression: Compression; what: string; size: number; onProgress?: (tarBytes: number) => void },
): Promise<NativeResult> {
  const { imagePath, policy, compression } = job;
  const decomp = childDecompressor(compression);
  const args = [
    'erofs-write', '--image', imagePath, '--tails', `${imagePath}.tails`,
    '--max-bytes', String(policy.maxBytes), '--max-entries', String(policy.maxEntries),
    '--xattr-prefix', policy.xattrPrefix === 'trusted.overlay.' ? 'trusted' : 'user',
    ...(policy.allowDevices ? ['--allow-devices'] : []),
    ...(job.onProgress ? ['--progress'] : []),
    ...(decomp ? ['--decompress', decomp] : []),
  ];
  trace(`unpack: erofs-write ${job.what} (${decomp ?? `${compression} in node`})`);
  const child = spawn(helper, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < 65536) stderr += s;
  });
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    let nl: number;
    while ((nl = stdout.indexOf('\n')) >= 0 && stdout.startsWith('p ')) {
      job.onProgress?.(Number(stdout.slice(2, nl)));
      stdout = stdout.slice(nl + 1);
    }
  });
  child.stdin!.on('error', () => {}); // EPIPE when the helper refused the layer: its exit says why
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (e) => {
      stderr += `\nberth-helper: erofs-write: IO\t\t${e.message}\n`;
      resolve({ code: 1, signal: null });
    });
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  const streams: Array<NodeJS.ReadableStream | NodeJS.WritableStream> = decomp ? [compressed, child.stdin!] : [compressed, createDecompressor(compression, job.size), child.stdin!];
  let killed = false;
  const piped = new Promise<Error | undefined>((resolve) => {
    (pipeline as unknown as (...a: unknown[]) => void)(...streams, (e: Error | null) => resolve(e ?? undefined));
  }).then((e) => {
    if (e && !isConsequence(e) && child.exitCode === null) {
      // the input failed (network, digest, node:zlib): the helper's answer no longer matters
      killed = true;
      child.kill('SIGKILL');
    }
    return e;
  });
  const [{ code, signal }, inputError] = await Promise.all([exited, piped]);
  if (code === null && !killed) stderr += `\nberth-helper: erofs-write: IO\t\tberth-helper erofs-write was killed by ${signal ?? 'a signal'}${signal === 'SIGSYS' ? ' (a system call outside its seccomp filter: a bug)' : ''}\n`;
  try {
    if (code !== 0 || inputError) {
      const helperErr = killed || code === 0 ? undefined : writerError(stderr, code, job.what, compression);
      // our EPIPE or a premature close follows from the helper's exit; any other input
      // error (network, digest, node:zlib) is the root cause, unless the layer was hostile
      const consequence = (inputError as NodeJS.ErrnoException | undefined)?.code;
      const inputIsCause = inputError !== undefined && !isConsequence(inputError);
      if (helperErr && (!inputIsCause || helperErr.code === 'HOSTILE_LAYER')) throw helperErr;
      if (inputError instanceof BerthError) throw inputError;
      const zlibError = typeof consequence === 'string' && consequence.startsWith('Z_');
      throw new BerthError('CORRUPT', zlibError ? `layer ${job.what}: cannot decompress (${compression}): ${inputError?.message}` : `layer ${job.what}: ${inputError?.message ?? 'input failed'}`, { cause: inputError });
    }
    const m = /^ok (\d+) (\d+) (\d+) (\d+) ([0-9a-f]{64})\n$/.exec(stdout);
    if (!m) throw new BerthError('INTERNAL', `berth-helper erofs-write: unexpected answer ${JSON.stringify(stdout.slice(0, 200))}`);
    return { entries: Number(m[1]), inodes: Number(m[2]), imageBytes: Number(m[3]), tarBytes: Number(m[4]), diffId: parseDigest(`sha256:${m[5]}`) };
  } catch (e) {
    compressed.destroy();
    await rm(imagePath, { force: true });
    throw e;
  }
}
