/**
 * @module snapshot/rootless-unpack
 * The puller's LayerUnpacker for an unprivileged user: dir snapshots
 * `$STORE/snapshots/dir/<chainID hex>/fs`, one directory per layer (the bwrap runtime
 * stacks them as overlay lowerdirs), unpacked while the layer streams, *inside* the user's
 * mapped user namespace (container root = the user, container IDs 1… = the subordinate
 * range, the `idmap` parameter), so every file gets its final owner from tar itself and
 * nothing is chowned afterwards. The same rules as root:
 *   compressed → decompress → sha256 (diff ID) → LayerValidator (snapshot/validate) ∥ GNU tar
 * (decompression, the diff-ID check, prepare/commit/abort come from unpack.ts, this file is
 * the Snapshotter it drives).
 *
 * Containment: GNU tar and the whiteout pass run under bubblewrap in that user namespace
 * with a view of the host that holds only /usr (read-only), a private /proc and /dev, no
 * network, and the layer's empty work directory at /d. So whatever a hostile archive does
 * (absolute or `..` names, symlink-then-write, hardlinks out), the only place it can write
 * is /d, which is removed on any failure. The validator sees every header as tar does and
 * turns what it refuses into HOSTILE_LAYER (tar is killed at once); unlike the root path
 * it is a check, not a gate, because the sandbox already confines tar's writes.
 * Overlay xattrs of the layer itself (user.overlay.*, trusted.*) are never restored: only
 * user.* and security.capability are, and opaque dirs come from `.wh..wh..opq` only.
 * Device nodes cannot be created in a user namespace and are skipped (as rootless Podman
 * does); a file owned by an ID outside the mapping is FAILED_PRECONDITION
 * (subid-range-too-small), not silently chowned.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { extract as tarExtract, type Header } from 'tar-stream';
import { isDigest, type Digest } from '../base/digest.ts';
import { BerthError, isBerthError } from '../base/errors.ts';
import { run } from '../base/exec.ts';
import type { Descriptor } from '../oci/types.ts';
import { unpackLayer } from './unpack.ts';
import { LayerValidator, type WhiteoutPlan } from './validate.ts';
import { defaultPolicy, type ActiveSnapshot, type CheckResult, type ExtractPolicy, type IngestResult, type SnapshotInfo, type SnapshotMeta, type Snapshotter } from './types.ts';

/** A block of host IDs (one /etc/subuid line): container IDs 1…count. */
export interface IdBlock {
  start: number;
  count: number;
}

export interface RootlessIdMap {
  subuid: IdBlock;
  subgid: IdBlock;
}

export interface RootlessUnpackerOptions {
  /** The user's store root ($XDG_DATA_HOME/berth). */
  root: string;
  idmap: RootlessIdMap;
  policy?: Partial<ExtractPolicy>;
  /** Helper binaries (tests). */
  bwrap?: string;
  unshare?: string;
}

const hexOf = (d: Digest): string => d.slice(d.indexOf(':') + 1);

function checkBlock(what: string, b: IdBlock): IdBlock {
  if (!Number.isSafeInteger(b.start) || !Number.isSafeInteger(b.count) || b.start < 1 || b.count < 1 || b.start + b.count > 2 ** 32 - 1) {
    throw new BerthError('INVALID_ARGUMENT', `${what}: ${b.start}:${b.count} is not a valid ID range`);
  }
  return b;
}

/** `unshare` into the user's mapping, then `bwrap` with only /usr and dir (at /d) visible. Pure. */
export function sandboxedArgv(idmap: RootlessIdMap, dir: string, argv: readonly string[], bin: { unshare?: string; bwrap?: string } = {}): string[] {
  const u = checkBlock('subuid range', idmap.subuid);
  const g = checkBlock('subgid range', idmap.subgid);
  if (!dir.startsWith('/') || dir.includes('\0') || dir.split('/').includes('..')) throw new BerthError('INVALID_ARGUMENT', `"${dir}" must be an absolute path without ".."`);
  return [
    bin.unshare ?? 'unshare', '--user', '--map-user=0', '--map-group=0', `--map-users=${u.start},1,${u.count}`, `--map-groups=${g.start},1,${g.count}`, '--',
    bin.bwrap ?? 'bwrap', '--unshare-pid', '--unshare-net', '--unshare-ipc', '--unshare-uts', '--die-with-parent', '--new-session',
    '--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64', '--symlink', 'usr/bin', '/bin', '--symlink', 'usr/sbin', '/sbin',
    '--proc', '/proc', '--dev', '/dev', '--bind', dir, '/d', '--chdir', '/d', '--clearenv', '--setenv', 'PATH', '/usr/sbin:/usr/bin', '--', ...argv,
  ];
}

/** GNU tar inside the sandbox, reading the decompressed layer from stdin. */
export const TAR_ARGV = [
  'tar', '--extract', '--file=-', '--directory=/d', '--numeric-owner', '--same-owner', '--preserve-permissions',
  '--xattrs', '--xattrs-include=user.*', '--xattrs-include=security.capability', '--xattrs-exclude=user.overlay.*', '--exclude=.wh.*',
];

/**
 * Whiteouts, run in the sandbox after tar: `w PATH` → a 0/0 character device unless this
 * layer has PATH itself; `o PATH` → user.overlay.opaque=y. Paths are the validator's
 * (normalised, no `..`), resolved inside the sandbox only.
 */
export const WHITEOUT_SCRIPT = `set -eu
while [ "$#" -ge 2 ]; do
  k=$1 p=/d/$2; shift 2
  case $k in
    w) if [ ! -e "$p" ] && [ ! -L "$p" ]; then mkdir -p -- "\${p%/*}"; mknod -- "$p" c 0 0; fi ;;
    o) mkdir -p -- "$p"; setfattr -n user.overlay.opaque -v y -- "$p" ;;
    *) echo "bad whiteout kind $k" >&2; exit 2 ;;
  esac
done
`;

/**
 * Kills a sandbox started by sandboxedArgv. SIGKILL to bwrap's PID-namespace init takes
 * every process of the namespace with it; killing only bwrap's monitor would orphan that
 * init (bwrap 0.8's --die-with-parent does not reach it) and it would hold tar's stderr
 * open for ever. The init must be found reliably: caught while bwrap is still cloning it,
 * /proc/PID/children does not list it yet, and the orphan then blocks for ever waiting for
 * its dead parent (seen in the hostile-corpus test). So bwrap's monitor is stopped first:
 * once it is in state T, no clone of its is in flight and every child it made is listed.
 */
async function killSandbox(pid: number | undefined): Promise<void> {
  if (!pid) return;
  const state = (): string | undefined => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      return undefined;
    }
  };
  const children = (): number[] => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const kill = (p: number, sig: NodeJS.Signals): void => {
    try {
      process.kill(p, sig);
    } catch {
      // already gone
    }
  };
  kill(pid, 'SIGSTOP');
  for (let i = 0; i < 200; i++) {
    const st = state();
    if (st === undefined || st === 'T' || st === 't' || st === 'Z') break;
    await new Promise((r) => setTimeout(r, 1));
  }
  for (const c of children()) kill(c, 'SIGKILL');
  kill(pid, 'SIGKILL');
}

const SKIPPABLE = [/Cannot mknod: Operation not permitted/, /Exiting with failure status due to previous errors/];

export class RootlessDirSnapshotter implements Snapshotter {
  readonly format = 'dir' as const;
  readonly base: string;
  private readonly opts: RootlessUnpackerOptions;

  constructor(opts: RootlessUnpackerOptions) {
    this.opts = opts;
    this.base = join(opts.root, 'snapshots', 'dir');
    checkBlock('subuid range', opts.idmap.subuid);
    checkBlock('subgid range', opts.idmap.subgid);
  }

  private sandboxed(dir: string, argv: readonly string[]): string[] {
    return sandboxedArgv(this.opts.idmap, dir, argv, this.opts);
  }

  path(chainId: Digest): string {
    if (!isDigest(chainId)) throw new BerthError('INVALID_ARGUMENT', `"${chainId}" is not a digest`);
    return join(this.base, hexOf(chainId));
  }

  async prepare(chainId: Digest): Promise<ActiveSnapshot> {
    const work = join(this.base, `.tmp-${hexOf(chainId)}-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(this.base, { recursive: true, mode: 0o700 });
    await mkdir(join(work, 'fs'), { recursive: true, mode: 0o755 });
    return { chainId, format: 'dir', dir: join(work, 'fs') };
  }

  async ingest(active: ActiveSnapshot, input: Readable, policy: ExtractPolicy): Promise<IngestResult> {
    const plan = await this.extract(active.dir, input, policy);
    await this.applyWhiteouts(active.dir, plan);
    return { entries: plan.entries, tarBytes: plan.tarBytes };
  }

  /** Validator and sandboxed tar read the same bytes; the first refusal kills tar. */
  private extract(dir: string, input: Readable, policy: ExtractPolicy): Promise<WhiteoutPlan & IngestResult> {
    const argv = this.sandboxed(dir, TAR_ARGV);
    const validator = new LayerValidator(policy);
    const parser = tarExtract();
    const tar = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'ignore', 'pipe'] });
    const stderr: Buffer[] = [];
    tar.stderr.on('data', (b: Buffer) => stderr.push(b));
    let total = 0;
    let failed: unknown;
    let parsed = false;
    let waits = 0;
    return new Promise((resolve, reject) => {
      const fail = (e: unknown): void => {
        if (failed !== undefined) return;
        failed = e;
        void killSandbox(tar.pid);
        parser.destroy();
        input.destroy();
      };
      const wait = (): void => {
        if (waits++ === 0) input.pause();
      };
      const done = (): void => {
        if (--waits === 0 && failed === undefined) input.resume();
      };
      parser.on('entry', (h: Header, s, next) => {
        try {
          validator.check(h as Parameters<LayerValidator['check']>[0]);
        } catch (e) {
          fail(e);
          return;
        }
        s.on('end', () => next());
        s.resume();
      });
      parser.on('error', (e: Error) => fail(isBerthError(e) ? e : new BerthError('CORRUPT', `layer is not a valid tar: ${e.message}`, { cause: e })));
      parser.on('finish', () => {
        parsed = true;
      });
      parser.on('drain', done);
      tar.stdin.on('drain', done);
      tar.stdin.on('error', () => {}); // EPIPE when tar dies: reported on 'close'
      tar.on('error', (e) => fail(new BerthError('FAILED_PRECONDITION', `bwrap/tar: ${e.message}`, { cause: e })));
      input.on('data', (chunk: Buffer) => {
        if (failed !== undefined) return;
        total += chunk.length;
        if (total > policy.maxBytes) {
          fail(new BerthError('HOSTILE_LAYER', `hostile layer: decompresses beyond ${policy.maxBytes} bytes (limit)`, { details: { limit: policy.maxBytes } }));
          return;
        }
        if (!parser.write(chunk)) wait();
        if (!tar.stdin.write(chunk)) wait();
      });
      input.on('end', () => {
        parser.end(undefined);
        tar.stdin.end();
      });
      input.on('error', (e) => fail(e));
      // Not 'close': that also waits for every holder of tar's stderr.
      tar.on('exit', (code) => {
        if (failed !== undefined) {
          reject(failed);
          return;
        }
        const err = Buffer.concat(stderr).toString('utf8');
        const lines = err.split('\n').filter((l) => l.trim() !== '' && !SKIPPABLE.some((re) => re.test(l)));
        if (code !== 0 && !(code === 2 && lines.length === 0)) {
          if (lines.some((l) => /Cannot change ownership/.test(l))) {
            reject(new BerthError('FAILED_PRECONDITION', `the layer has files owned by IDs outside the subordinate range (${this.opts.idmap.subuid.count} IDs from /etc/subuid): ${lines[0]}; give the user a range of 65536 IDs`, {
              details: { reason: 'subid-range-too-small', errors: lines.slice(0, 5) },
            }));
            return;
          }
          const space = /No space left|Disk quota/.test(err);
          reject(new BerthError(space ? 'NO_SPACE' : 'HOSTILE_LAYER', `extracting the layer failed (tar exit ${code}): ${lines.slice(0, 3).join('; ')}`, { details: { errors: lines.slice(0, 10) } }));
          return;
        }
        // tar may finish before the parser has seen the last blocks; wait for it.
        const finish = (): void => {
          if (failed !== undefined) reject(failed);
          else resolve({ ...validator.plan(), entries: validator.entries, tarBytes: total });
        };
        if (parsed) finish();
        else {
          parser.once('finish', finish);
          parser.once('close', () => (parsed ? undefined : reject(failed ?? new BerthError('CORRUPT', 'tar ended before the layer stream was fully validated'))));
        }
      });
    });
  }

  private async applyWhiteouts(dir: string, plan: WhiteoutPlan): Promise<void> {
    const args = [...plan.whiteouts.flatMap((p) => ['w', p]), ...plan.opaques.flatMap((p) => ['o', p])];
    // Bounded argv per run (ARG_MAX): 2000 entries at a time.
    for (let i = 0; i < args.length; i += 4000) {
      const r = await run(this.sandboxed(dir, ['sh', '-c', WHITEOUT_SCRIPT, 'berth-whiteouts', ...args.slice(i, i + 4000)]), { reject: false, timeoutMs: 600_000 });
      if (r.exitCode !== 0) throw new BerthError('HOSTILE_LAYER', `converting whiteouts failed: ${r.stderr.trim().split('\n').slice(0, 3).join('; ')}`);
    }
  }

  async commit(active: ActiveSnapshot, meta: SnapshotMeta): Promise<void> {
    const work = join(active.dir, '..');
    await writeFile(join(work, 'meta.json'), `${JSON.stringify(meta)}\n`);
    const dest = this.path(active.chainId);
    try {
      await rename(work, dest);
    } catch (e) {
      // Someone else committed the same layer first: theirs is as good as ours.
      if (existsSync(join(dest, 'fs'))) {
        await this.abort(active);
        return;
      }
      throw e;
    }
  }

  /** Removes a work area (files of subordinate IDs: removed inside the mapping). */
  async abort(active: ActiveSnapshot): Promise<void> {
    await this.removeTree(join(active.dir, '..'));
  }

  private async removeTree(dir: string): Promise<void> {
    if (!existsSync(dir)) return;
    const { subuid: u, subgid: g } = this.opts.idmap;
    await run([this.opts.unshare ?? 'unshare', '--user', '--map-user=0', '--map-group=0', `--map-users=${u.start},1,${u.count}`, `--map-groups=${g.start},1,${g.count}`,
      '--', 'rm', '-rf', '--one-file-system', '--', dir], { timeoutMs: 600_000 });
  }

  /** Removes work areas of pulls whose process is gone (a killed `berth pull`); returns how many. */
  async sweep(): Promise<number> {
    let n = 0;
    for (const d of await readdir(this.base).catch(() => [] as string[])) {
      const m = /^\.tmp-[0-9a-f]{64}-(\d+)-[0-9a-f]{8}$/.exec(d);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || existsSync(`/proc/${pid}`)) continue;
      await this.removeTree(join(this.base, d)).catch(() => {});
      n++;
    }
    return n;
  }

  async mounts(chainId: Digest): Promise<string> {
    return join(this.path(chainId), 'fs');
  }

  async release(): Promise<void> {}

  async has(chainId: Digest): Promise<boolean> {
    return existsSync(join(this.path(chainId), 'meta.json')) && existsSync(join(this.path(chainId), 'fs'));
  }

  async list(): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    for (const n of await readdir(this.base).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{64}$/.test(n)) continue;
      const chainId = `sha256:${n}` as Digest;
      if (await this.has(chainId)) out.push({ chainId, format: 'dir', path: this.path(chainId), size: (await stat(join(this.path(chainId), 'meta.json'))).size });
    }
    return out;
  }

  async remove(chainId: Digest): Promise<void> {
    await this.removeTree(this.path(chainId));
  }

  async check(chainId: Digest): Promise<CheckResult> {
    if (!existsSync(this.path(chainId))) return { chainId, ok: false, problem: 'missing' };
    return (await this.has(chainId)) ? { chainId, ok: true } : { chainId, ok: false, problem: 'incomplete' };
  }
}

/** What image/pull's LayerUnpacker needs (structurally the same interface; snapshot ranks below image). */
export interface RootlessLayerUnpacker {
  has(chainId: Digest): Promise<boolean>;
  unpack(args: { chainId: Digest; diffId: Digest; descriptor: Descriptor; compressed: Readable; onProgress?: (tarBytes: number) => void }): Promise<void>;
  readonly snapshotter: RootlessDirSnapshotter;
}

/** The rootless LayerUnpacker: pass it as `unpacker` to pullImage() for a user's store. */
export function createRootlessUnpacker(opts: RootlessUnpackerOptions): RootlessLayerUnpacker {
  const snapshotter = new RootlessDirSnapshotter(opts);
  const policy = defaultPolicy({ allowDevices: true, xattrPrefix: 'user.overlay.', ...opts.policy });
  let swept: Promise<number> | undefined;
  return {
    snapshotter,
    has: (chainId) => snapshotter.has(chainId),
    unpack: async (args) => {
      await (swept ??= snapshotter.sweep().catch(() => 0));
      if (await snapshotter.has(args.chainId)) {
        args.compressed.destroy();
        return;
      }
      await unpackLayer(snapshotter, args, policy);
    },
  };
}
