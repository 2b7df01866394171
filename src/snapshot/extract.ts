/**
 * @module snapshot/extract
 * Extracts one untrusted, already decompressed layer tar into an empty directory with
 * GNU tar, while tar-stream parses the very same bytes and LayerValidator checks every
 * header. The two are *gated*: a byte reaches tar only after the header of the entry it
 * belongs to has been validated (header + data of entry n are released when entry n's
 * header passes; PAX/long-name blocks are held until the header they describe passes). So
 * tar never even starts an entry we would reject. On a violation tar is SIGKILLed and the
 * caller removes the directory.
 *
 * Only GNU tar writes metadata: tar-stream mangles binary PAX values (security.capability),
 * so the validator looks at names and sizes only, and tar is the one that sets xattrs.
 * Whiteout entries (`.wh.*`) are excluded from tar and returned as a plan (whiteout.ts).
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { extract as tarExtract, type Header } from 'tar-stream';
import { BerthError, BugError, fromSystemError, isBerthError } from '../base/errors.ts';
import { ExecError, escapeCommand } from '../base/exec.ts';
import { LayerValidator, type WhiteoutPlan } from './validate.ts';
import type { ExtractPolicy } from './types.ts';

export interface ExtractResult extends WhiteoutPlan {
  entries: number;
  /** Decompressed tar bytes read. */
  tarBytes: number;
}

/** GNU tar arguments for extracting an OCI layer into dir from stdin. */
export function tarExtractArgs(dir: string): string[] {
  return [
    'tar', '--extract', '--file=-', `--directory=${dir}`,
    '--numeric-owner', '--same-owner', '--preserve-permissions',
    '--xattrs', '--xattrs-include=*', '--exclude=.wh.*',
  ];
}

/** Bytes beyond the last validated entry we hold before pausing input (and, if the
 * validator has consumed them all without finding an entry, give up). */
const MAX_QUEUED = 8 << 20;

/**
 * Reads `input` (decompressed tar) to its end, extracting into `dir` (must exist, empty).
 * Rejects with HOSTILE_LAYER / UNSUPPORTED / CORRUPT / NO_SPACE; input is destroyed on error.
 */
export function extractLayerTar(input: Readable, dir: string, policy: ExtractPolicy): Promise<ExtractResult> {
  const argv = tarExtractArgs(dir);
  const start = performance.now();
  const validator = new LayerValidator(policy);
  const parser = tarExtract();
  const tar = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
  const stderr: Buffer[] = [];
  tar.stderr.on('data', (b: Buffer) => stderr.push(b));

  const queue: Buffer[] = [];
  let queued = 0; // bytes in queue
  let forwarded = 0; // bytes written to tar
  let safe = 0; // bytes below this offset may go to tar
  let total = 0; // bytes read from input
  let failed: unknown;
  let tarWaiting = false;
  let parserWaiting = false;
  let parsed = false; // the validator saw the whole stream

  return new Promise<ExtractResult>((resolve, reject) => {
    const fail = (e: unknown): void => {
      if (failed !== undefined) return;
      failed = e;
      tar.kill('SIGKILL');
      parser.destroy();
      input.destroy();
    };
    let flushScheduled = false;
    /** Coalesces the many small releases of one parsed chunk into one write (per tick). */
    const scheduleFlush = (): void => {
      if (flushScheduled) return;
      flushScheduled = true;
      setImmediate(() => {
        flushScheduled = false;
        flush();
      });
    };
    const flush = (): void => {
      tar.stdin.cork();
      while (queue.length > 0 && forwarded < safe && failed === undefined) {
        const head = queue[0] as Buffer;
        const n = Math.min(head.length, safe - forwarded);
        const part = n === head.length ? (queue.shift() as Buffer) : head.subarray(0, n);
        if (n !== head.length) queue[0] = head.subarray(n);
        queued -= n;
        forwarded += n;
        if (!tar.stdin.write(part)) tarWaiting = true;
      }
      tar.stdin.uncork();
      maybeResume();
    };
    const maybeResume = (): void => {
      if (failed === undefined && !parserWaiting && queued >= MAX_QUEUED) {
        // the validator consumed all of this without finding an entry: zero blocks or
        // header padding, i.e. a bomb (waiting for an entry here would hang forever)
        fail(new BerthError('HOSTILE_LAYER', `hostile layer: ${queued} bytes without a tar entry after offset ${forwarded}`));
        return;
      }
      if (failed === undefined && !tarWaiting && !parserWaiting && queued < MAX_QUEUED && input.isPaused()) input.resume();
    };

    parser.on('entry', (header: Header, s, next) => {
      const h = header as Header & { byteOffset?: number; pax?: Record<string, string> };
      try {
        validator.check(h);
      } catch (e) {
        fail(e);
        return;
      }
      if (typeof h.byteOffset !== 'number') {
        fail(new BugError('tar-stream did not report the entry offset; refusing to extract ungated'));
        return;
      }
      // validator.check guarantees size 0 for everything but regular files
      safe = Math.max(safe, h.byteOffset + Math.ceil((h.size ?? 0) / 512) * 512);
      scheduleFlush();
      s.on('end', () => next());
      s.resume();
    });
    parser.on('error', (e: Error) => fail(isBerthError(e) ? e : new BerthError('CORRUPT', `layer is not a valid tar: ${e.message}`, { cause: e })));
    parser.on('drain', () => {
      parserWaiting = false;
      maybeResume();
    });
    parser.on('finish', () => {
      parsed = true;
      safe = Infinity; // the end-of-archive blocks
      flush();
      tar.stdin.end();
    });
    tar.stdin.on('drain', () => {
      tarWaiting = false;
      maybeResume();
    });
    tar.stdin.on('error', () => {}); // EPIPE when tar dies: reported via 'close'
    tar.on('error', (e) => fail(new BerthError('FAILED_PRECONDITION', `tar: ${e.message}`, { cause: e })));

    input.on('data', (chunk: Buffer) => {
      if (failed !== undefined) return;
      total += chunk.length;
      if (total > policy.maxBytes) {
        fail(new BerthError('HOSTILE_LAYER', `hostile layer: decompresses beyond ${policy.maxBytes} bytes (limit)`, {
          details: { limit: policy.maxBytes },
        }));
        return;
      }
      queue.push(chunk);
      queued += chunk.length;
      if (!parser.write(chunk)) parserWaiting = true;
      flush();
      if (tarWaiting || parserWaiting || queued >= MAX_QUEUED) input.pause();
    });
    input.on('end', () => parser.end(undefined));
    input.on('error', (e) => fail(e));

    tar.on('close', (exitCode, signal) => {
      if (failed !== undefined) {
        reject(isBerthError(failed) ? failed : fromSystemError(failed));
        return;
      }
      const err = Buffer.concat(stderr).toString('utf8');
      if (exitCode !== 0) {
        parser.destroy();
        input.destroy(); // stop the download side too; the caller removes the directory
        const result = {
          command: argv, escapedCommand: escapeCommand(argv), exitCode, signal, stdout: '', stderr: err,
          durationMs: Math.round(performance.now() - start), timedOut: false,
        };
        reject(new ExecError(/No space left|Disk quota/.test(err) ? 'NO_SPACE' : 'INTERNAL', result));
        return;
      }
      if (!parsed) {
        reject(new BerthError('CORRUPT', 'tar ended before the layer stream was fully validated'));
        return;
      }
      resolve({ ...validator.plan(), entries: validator.entries, tarBytes: total });
    });
  });
}
