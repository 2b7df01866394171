/**
 * Runs one Runtime verb of the bwrap backend as the calling (unprivileged) user and prints
 * the outcome as one JSON line: {ok:true,value} or {ok:false,code,reason,message}. The
 * rootless integration tests run it inside a test host as `tuser`
 * (systemd-run --uid=tuser, with XDG_RUNTIME_DIR pointing at the user's manager), which is
 * the position a user's `berth` will be in once the CLI is wired to the Runtime seam.
 *   rootless-driver.ts VERB NAME [JSON]
 * Store: $XDG_DATA_HOME/berth.
 */
import { join } from 'node:path';
import { isBerthError } from '../../src/base/errors.ts';
import { userInfo } from 'node:os';
import { loadRuntimes } from '../../src/manager/backends.ts';
import { applyLayerRootless, probeHost } from '../../src/runtime/bwrap/index.ts';
import type { ContainerSpec } from '../../src/container/spec.ts';
import type { Digest } from '../../src/base/digest.ts';
import { createRootlessUnpacker } from '../../src/snapshot/rootless-unpack.ts';
import { createReadStream } from 'node:fs';

const [verb, name = '', json] = process.argv.slice(2);
const store = join(process.env.XDG_DATA_HOME ?? join(process.env.HOME ?? '/', '.local/share'), 'berth');
const rt = (await loadRuntimes(['bwrap'])).create('bwrap', { storeRoot: store });

async function main(): Promise<unknown> {
  switch (verb) {
    case 'create': {
      const { spec, publish } = JSON.parse(json ?? '{}') as { spec: ContainerSpec; publish?: [] };
      return rt.create(spec, { publish });
    }
    case 'start': return rt.start(name);
    case 'stop': return rt.stop(name, json ? (JSON.parse(json) as { timeoutSec?: number }) : {});
    case 'kill': return rt.kill(name, json);
    case 'rm': return rt.remove(name, { force: json === 'force' });
    case 'state': return rt.state(name);
    case 'list': return rt.list();
    case 'gcroots': return rt.gcRoots();
    case 'apply': {
      // name = destination dir, json = layer file: the rootless layer-apply primitive.
      const f = await probeHost({ user: { name: userInfo().username, uid: userInfo().uid, gid: userInfo().gid } });
      return applyLayerRootless({ subuid: f.subuid, subgid: f.subgid, dest: name, layer: json ?? '' });
    }
    case 'unpack': {
      // name = layer blob file, json = { chainId, diffId, digest, mediaType, size }: the rootless LayerUnpacker.
      const f = await probeHost({ user: { name: userInfo().username, uid: userInfo().uid, gid: userInfo().gid } });
      const l = JSON.parse(json ?? '{}') as { chainId: Digest; diffId: Digest; digest: Digest; mediaType: string; size: number };
      const u = createRootlessUnpacker({ root: store, idmap: { subuid: f.subuid, subgid: f.subgid } });
      const t0 = performance.now();
      await u.unpack({ chainId: l.chainId, diffId: l.diffId, descriptor: { mediaType: l.mediaType, digest: l.digest, size: l.size }, compressed: createReadStream(name) });
      return { ms: Math.round(performance.now() - t0), has: await u.has(l.chainId) };
    }
    case 'exec': return rt.exec(name, JSON.parse(json ?? '[]') as string[]);
    // The container's own output goes to this process's stdout before the JSON line.
    case 'run': return rt.runAttached(name, json ? (JSON.parse(json) as { tty?: boolean; stdin?: boolean }) : {});
    case 'run-rm': {
      // What `berth run --rm` does after resolving the image: create, run attached, remove.
      const { spec, publish } = JSON.parse(json ?? '{}') as { spec: ContainerSpec; publish?: [] };
      await rt.create(spec, { publish });
      try {
        return await rt.runAttached(spec.name, {});
      } finally {
        await rt.remove(spec.name, { force: true });
      }
    }
    case 'enable': return rt.enable(name);
    case 'disable': return rt.disable(name);
    case 'ports': return rt.ports(name);
    case 'summaries': return rt.summaries();
    case 'logs': {
      const lines: string[] = [];
      for await (const l of rt.logs(name)) lines.push(l);
      return lines;
    }
    default: throw new Error(`unknown verb ${verb}`);
  }
}

main().then(
  (value) => process.stdout.write(`${JSON.stringify({ ok: true, value: value ?? null })}\n`),
  (e) => {
    process.stdout.write(`${JSON.stringify(isBerthError(e) ? { ok: false, code: e.code, reason: e.details.reason, message: e.message } : { ok: false, code: 'JS', message: String((e as Error)?.stack ?? e) })}\n`);
  },
);
