/**
 * @module snapshot/unpack-worker
 * Runs one layer's decompression, diff-ID hash, tar parser, validator and EROFS writer
 * (inflate.ts + erofs/) in a worker thread, so that a big layer's CPU work does not
 * share the main thread with the download (HTTP, blob digest, blob writes) and the other
 * layers. Measured on the Debian bench image (2 cores): the main thread was the
 * bottleneck of the whole pull, busy ~1.9 s of ~2.1 s (README "Snapshots").
 *
 * Protocol: the main thread copies each compressed chunk into a fresh ArrayBuffer and
 * transfers it (one copy: 55 MB costs ~15 ms); the worker acknowledges every chunk it
 * hands to the decompressor, and the main thread pauses its input while more than
 * MAX_QUEUED bytes are unacknowledged, so memory stays bounded whatever the registry
 * sends. The worker answers with the result or a BerthError's code, message and details
 * (rebuilt on the main thread). On failure the main thread destroys the input; on
 * cancellation (the input errors or closes early) it tells the worker to stop, and waits
 * for it to remove its partial image before it reports.
 *
 * The worker's entry is this very module (see startWorker): in the bundle,
 * import.meta.url is the chunk that holds it, so no extra entry point is needed.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Readable } from 'node:stream';
import type { MessagePort, Worker } from 'node:worker_threads';
import type { Digest } from '../base/digest.ts';
import { BerthError, fromSystemError, isBerthError, type ErrorCode } from '../base/errors.ts';
import type { Compression } from '../oci/media-types.ts';
import { inflateInto } from './inflate.ts';
import { writeLayerImage } from './erofs/index.ts';
import type { ExtractPolicy, IngestResult } from './types.ts';

const KEY = 'berth-unpack-worker/1';
/** Compressed bytes sent but not yet taken by the worker's decompressor. */
const MAX_QUEUED = 8 << 20;
/** Compressed bytes per message. */
const BATCH = 256 << 10;
/** Layers at least this big (compressed) go to a worker by default: below it the worker's
 * start (~0.1 s of CPU: a worker compiles Node's internals again) costs more than the main thread saves. */
export const WORKER_MIN_BYTES = 16 << 20;

export interface WorkerJob {
  imagePath: string;
  policy: ExtractPolicy;
  compression: Compression;
  /** The layer's digest, for messages. */
  what: string;
  /** Compressed size (picks the decompressor). */
  size: number;
}

type ToWorker = { t: 'data'; b: Uint8Array } | { t: 'end' } | { t: 'abort' };
type FromWorker =
  | { t: 'ack'; n: number }
  | { t: 'progress'; n: number }
  | { t: 'done'; entries: number; tarBytes: number; diffId: Digest }
  | { t: 'error'; code: ErrorCode; message: string; details?: Record<string, unknown> };

/**
 * Whether a layer of `size` compressed bytes is unpacked in a worker:
 * BERTH_UNPACK_WORKER=0 never, =1 always, unset: from WORKER_MIN_BYTES on, with 3 cores
 * or more. The worker needs a core of its own besides the main thread and the igzip child:
 * on this 2-core VM a Debian pull took the same wall time with it (1.69-1.73 s against
 * 1.65-1.77 s, load ~5) for ~0.2 s more CPU, so 2 cores keep the main thread.
 */
export function useWorker(size: number): boolean {
  const env = process.env.BERTH_UNPACK_WORKER;
  if (env === '0') return false;
  if (env === '1') return true;
  return size >= WORKER_MIN_BYTES && availableParallelism() >= 3;
}

/**
 * node:worker_threads, loaded on first use (~7 ms that a pull without a worker would pay).
 * With require, not import(): bin/launch.cjs runs the bundle as a vm.Script, where Node 20
 * has no loader for a dynamic import() (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING: every
 * worker pull failed).
 */
function loadWorkerThreads(): typeof import('node:worker_threads') {
  return createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
}

/** Set by the worker's boot script: this module, loaded there, runs the job. */
const WORKER_MARK = Symbol.for('berth.unpack-worker');

/**
 * The worker boots from a two-line script that marks the thread and imports this module
 * (in the bundle: the chunk holding it). node:worker_threads is loaded only when a worker
 * starts (~7 ms otherwise paid by every pull). From sources (tests, BERTH_DEV=1) a worker
 * does not inherit tsx's module hooks on Node 20, so the script registers them first, as
 * bin/launch.cjs does.
 */
async function startWorker(url: URL, data: unknown): Promise<Worker> {
  const { Worker } = loadWorkerThreads();
  const mark = `globalThis[Symbol.for(${JSON.stringify(WORKER_MARK.description)})] = true;`;
  if (url.pathname.endsWith('.ts')) {
    // Sources only (tests, BERTH_DEV=1); the build defines import.meta.resolve away.
    const tsx = import.meta.resolve('tsx/esm/api');
    const boot = `${mark} import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`;
    return new Worker(boot, { eval: true, workerData: data });
  }
  // In the build, this module is inside dist/main.cjs, whose entry runs the CLI: the worker
  // gets its own bundle, dist/unpack-worker.cjs (scripts/build.mjs), which holds only this
  // module and what it imports.
  return new Worker(`${mark} import(${JSON.stringify(new URL('./unpack-worker.cjs', url).href)});`, { eval: true, workerData: data });
}

/** Decompresses, hashes and writes `compressed` into job.imagePath in a worker thread. */
export function ingestInWorker(
  compressed: Readable,
  job: WorkerJob,
  onProgress?: (tarBytes: number) => void,
): Promise<{ result: IngestResult; diffId: Digest }> {
  compressed.pause(); // until the worker is there to take it
  let early: unknown;
  const onEarly = (e: unknown) => {
    early ??= e;
  };
  compressed.on('error', onEarly);
  return startWorker(new URL(import.meta.url), { ...job, key: KEY }).then(
    (worker) => {
      compressed.off('error', onEarly);
      return talk(worker, compressed, job, early, onProgress);
    },
    (e: unknown) => {
      compressed.off('error', onEarly);
      compressed.destroy();
      throw fromSystemError(e);
    },
  );
}

function talk(
  worker: Worker,
  compressed: Readable,
  job: WorkerJob,
  early: unknown,
  onProgress?: (tarBytes: number) => void,
): Promise<{ result: IngestResult; diffId: Digest }> {
  return new Promise((resolve, reject) => {
    let queued = 0;
    let paused = false;
    let inputDone = false;
    let outcome: { ok: { result: IngestResult; diffId: Digest } } | { err: unknown } | undefined;
    let killTimer: NodeJS.Timeout | undefined;

    const stopInput = () => {
      compressed.off('data', onData);
      compressed.off('end', onEnd);
      compressed.off('error', onInputError);
      compressed.off('close', onClose);
    };
    const settle = (o: NonNullable<typeof outcome>) => {
      outcome ??= o;
    };
    // chunks are copied into BATCH-sized buffers: one message per BATCH, not per chunk
    let batch: Uint8Array | undefined;
    let fill = 0;
    const post = () => {
      if (!batch || fill === 0) return;
      const b = fill === batch.length ? batch : batch.subarray(0, fill);
      queued += fill;
      worker.postMessage({ t: 'data', b } satisfies ToWorker, [b.buffer as ArrayBuffer]);
      batch = undefined;
      fill = 0;
    };
    const onData = (c: Buffer) => {
      let off = 0;
      while (off < c.length) {
        batch ??= new Uint8Array(BATCH);
        const n = Math.min(c.length - off, BATCH - fill);
        batch.set(n === c.length ? c : c.subarray(off, off + n), fill);
        fill += n;
        off += n;
        if (fill === BATCH) post();
      }
      if (!paused && queued > MAX_QUEUED) {
        paused = true;
        compressed.pause();
      }
    };
    const onEnd = () => {
      inputDone = true;
      stopInput();
      post();
      worker.postMessage({ t: 'end' } satisfies ToWorker);
    };
    const cancel = (e: unknown) => {
      if (inputDone) return;
      inputDone = true;
      stopInput();
      settle({ err: e });
      worker.postMessage({ t: 'abort' } satisfies ToWorker);
      // the worker stops at its next chunk; if it hangs (it should not), end it
      killTimer = setTimeout(() => void worker.terminate(), 10_000);
      killTimer.unref();
    };
    const onInputError = (e: unknown) => cancel(onInputErrorValue(e));
    const onClose = () => {
      if (!inputDone) cancel(new BerthError('CANCELLED', `layer ${job.what}: input closed before its end`));
    };

    worker.on('message', (m: FromWorker) => {
      switch (m.t) {
        case 'ack':
          queued -= m.n;
          if (paused && queued <= MAX_QUEUED / 2) {
            paused = false;
            compressed.resume();
          }
          break;
        case 'progress':
          onProgress?.(m.n);
          break;
        case 'done':
          settle({ ok: { result: { entries: m.entries, tarBytes: m.tarBytes }, diffId: m.diffId } });
          break;
        case 'error':
          settle({ err: new BerthError(m.code, m.message, { details: m.details }) });
          break;
      }
    });
    worker.on('error', (e) => settle({ err: fromSystemError(e) }));
    worker.on('exit', (code) => {
      if (killTimer) clearTimeout(killTimer);
      const o = outcome ?? { err: new BerthError('INTERNAL', `layer ${job.what}: unpack worker exited (${code}) without an answer`) };
      if ('ok' in o) {
        resolve(o.ok);
        return;
      }
      if (!inputDone) {
        inputDone = true;
        stopInput();
      }
      compressed.destroy(); // the caller's contract: a failed unpack destroys its input
      reject(o.err);
    });
    compressed.on('data', onData);
    compressed.once('end', onEnd);
    compressed.once('error', onInputError);
    compressed.once('close', onClose);
    if (early !== undefined || compressed.destroyed) {
      cancel(early !== undefined ? onInputErrorValue(early) : new BerthError('CANCELLED', `layer ${job.what}: input closed before its end`));
    } else {
      compressed.resume();
    }
  });
}

const onInputErrorValue = (e: unknown): BerthError => (isBerthError(e) ? e : fromSystemError(e));

/** The worker's side: input chunks from the port → inflateInto → writeLayerImage. */
async function runWorker(port: MessagePort, job: WorkerJob): Promise<void> {
  const input = new Readable({ read() {}, highWaterMark: 1 << 20 });
  port.on('message', (m: ToWorker) => {
    if (m.t === 'data') input.push(Buffer.from(m.b.buffer, m.b.byteOffset, m.b.byteLength));
    else if (m.t === 'end') input.push(null);
    else input.destroy(new BerthError('CANCELLED', `layer ${job.what}: unpack cancelled`));
  });
  // 'data' fires when the pipeline takes a chunk (it pauses the stream under backpressure)
  input.on('data', (c: Buffer) => port.postMessage({ t: 'ack', n: c.length } satisfies FromWorker));
  let answer: FromWorker;
  try {
    const r = await inflateInto(input, job.compression, job.what, (tar) => writeLayerImage(tar, job.imagePath, job.policy), (n) =>
      port.postMessage({ t: 'progress', n } satisfies FromWorker), job.size);
    answer = { t: 'done', entries: r.result.entries, tarBytes: r.result.tarBytes, diffId: r.diffId };
  } catch (e) {
    const b = isBerthError(e) ? e : fromSystemError(e);
    answer = { t: 'error', code: b.code, message: b.message, details: { ...b.details } };
  }
  try {
    port.postMessage(answer);
  } catch {
    // details that cannot be cloned: send the rest
    if (answer.t === 'error') port.postMessage({ ...answer, details: undefined });
  }
  port.close();
}

if ((globalThis as Record<symbol, unknown>)[WORKER_MARK] === true) {
  const { parentPort, workerData } = loadWorkerThreads();
  if (parentPort && (workerData as { key?: string } | null)?.key === KEY) void runWorker(parentPort, workerData as WorkerJob);
}
