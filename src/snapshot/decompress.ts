/**
 * @module snapshot/decompress
 * A streaming decompressor per layer compression. Corrupt input surfaces as a CORRUPT
 * BerthError on the returned stream.
 *
 * gzip: ISA-L's `igzip -dc` (Debian package `isal`) in a child process when it is on
 * PATH — 156 ms for the Debian bench image's 55 MB of layers against ~250 ms for
 * node:zlib and 613 ms for GNU zcat (issue 11's measurements) — and it runs on another
 * core than the tar parser and image writer. node:zlib is the fallback (no igzip, or
 * BERTH_GZIP=node), and inflates layers below IGZIP_MIN_BYTES (BERTH_GZIP=igzip: never).
 * igzip checks each member's CRC32 and length; the diff ID check after decompression
 * covers the rest.
 * zstd: `zstd -dc` in a child process when it is on PATH (Debian package `zstd`), like igzip;
 * zstd-napi in process otherwise, or with BERTH_ZSTD=napi (both measured in bench/stages.mts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { zlib } from '../base/builtins.ts';
import { join } from 'node:path';
import { Duplex, PassThrough, type Transform } from 'node:stream';
import type { Compression } from '../oci/media-types.ts';
import { BerthError } from '../base/errors.ts';

type ZstdModule = { DecompressStream: new () => Transform };
let zstd: ZstdModule | undefined;
/** zstd-napi is a native addon: loaded on the first zstd layer, not on every berth start. */
function zstdModule(): ZstdModule {
  zstd ??= createRequire(import.meta.url)('zstd-napi') as ZstdModule;
  return zstd;
}


const toolPaths = new Map<string, string | null>();
/** An executable on PATH, or null (looked up once per process and name). */
function findTool(name: string): string | null {
  const known = toolPaths.get(name);
  if (known !== undefined) return known;
  let found: string | null = null;
  for (const dir of (process.env.PATH || '/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      found = p;
      break;
    } catch {
      // not here
    }
  }
  toolPaths.set(name, found);
  return found;
}

/** The igzip executable, or null (BERTH_GZIP=node: always null). */
export function findIgzip(): string | null {
  return process.env.BERTH_GZIP === 'node' ? null : findTool('igzip');
}

/** The zstd executable, or null (BERTH_ZSTD=napi: always null). */
export function findZstd(): string | null {
  return process.env.BERTH_ZSTD === 'napi' ? null : findTool('zstd');
}

export type ZstdEngine = 'zstd' | 'zstd-napi';

export function zstdEngine(): ZstdEngine {
  return findZstd() ? 'zstd' : 'zstd-napi';
}

export type GzipEngine = 'igzip' | 'zlib';

/** The engine for a gzip layer of `size` compressed bytes. */
export function gzipEngine(size = Infinity): GzipEngine {
  return (size >= IGZIP_MIN_BYTES || process.env.BERTH_GZIP === 'igzip') && findIgzip() ? 'igzip' : 'zlib';
}

/**
 * A Duplex around `igzip -dc`: compressed bytes in (stdin), tar bytes out (stdout).
 * Errors (non-zero exit, a signal) become CORRUPT; destroying the stream kills igzip.
 */
class ChildDecompressor extends Duplex {
  private readonly child: ChildProcess;
  private stderr = '';
  private exited = false;
  private outEnded = false;
  private exitCode: number | null = null;
  private exitSignal: NodeJS.Signals | null = null;

  constructor(argv: string[], what: string) {
    // small writable side: compressed input can be 1000:1 (a bomb), keep little of it queued
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 16 << 10 });
    this.child = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const child = this.child;
    child.stderr!.on('data', (b: Buffer) => {
      if (this.stderr.length < 4096) this.stderr += b.toString('utf8');
    });
    child.stdin!.on('error', () => {}); // EPIPE when the child dies: reported via exit
    child.stdout!.on('data', (b: Buffer) => {
      if (!this.push(b)) child.stdout!.pause();
    });
    child.stdout!.on('end', () => {
      this.outEnded = true;
      this.maybeEnd(what);
    });
    child.on('error', (e) => this.destroy(new BerthError('FAILED_PRECONDITION', `${argv[0]}: ${e.message}`, { cause: e })));
    child.on('exit', (code, signal) => {
      this.exited = true;
      this.exitCode = code;
      this.exitSignal = signal;
      this.maybeEnd(what);
    });
  }

  private maybeEnd(what: string): void {
    if (!this.exited || !this.outEnded || this.destroyed) return;
    if (this.exitCode === 0) {
      this.push(null);
      return;
    }
    const why = this.stderr.trim().split('\n')[0] || (this.exitSignal ? `killed by ${this.exitSignal}` : `exit ${this.exitCode}`);
    this.destroy(new BerthError('CORRUPT', `cannot decompress (${what}): ${why}`));
  }

  override _read(): void {
    this.child.stdout!.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.child.stdin!.write(chunk)) cb();
    else this.child.stdin!.once('drain', () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.child.stdin!.end(() => cb());
  }

  override _destroy(e: Error | null, cb: (e?: Error | null) => void): void {
    if (!this.exited) this.child.kill('SIGKILL');
    cb(e);
  }
}

/**
 * Compressed layers smaller than this inflate in process with node:zlib: starting igzip
 * and moving its output through two pipes costs more than it saves on a small layer (a
 * 1.1 MB busybox layer: zlib 11-13 ms, igzip 24-30 ms from spawn to end).
 */
export const IGZIP_MIN_BYTES = 4 << 20;

/** `size`: the compressed size, when known (unknown: as if big). */
export function createDecompressor(compression: Compression, size = Infinity): Transform | Duplex {
  switch (compression) {
    case 'gzip': {
      const igzip = size >= IGZIP_MIN_BYTES || process.env.BERTH_GZIP === 'igzip' ? findIgzip() : null;
      if (igzip) return new ChildDecompressor([igzip, '-dcq'], 'gzip');
      // 1 MiB output chunks: fewer, larger writes into the parser.
      // node:zlib on first use: every command that opens the snapshot store imports this module
      return zlib().createGunzip({ chunkSize: 1 << 20 });
    }
    case 'zstd': {
      // `zstd -dc` runs on another core: for the 51 MB Debian layer recompressed with
      // zstd -3, 0.18-0.22 s with 0.09-0.13 s of main-thread CPU, against zstd-napi's
      // 0.19-0.24 s all on the main thread. Both keep zstd's default window limit (128 MiB).
      const zstdBin = findZstd();
      if (zstdBin) return new ChildDecompressor([zstdBin, '-dcq'], 'zstd');
      return new (zstdModule().DecompressStream)();
    }
    case 'none':
      return new PassThrough({ highWaterMark: 1 << 20 });
    default:
      throw new BerthError('UNSUPPORTED', `unsupported layer compression ${String(compression)}`);
  }
}
