/**
 * @module manager/services
 * Opens what a verb needs: the content store at the chosen root, the layer unpacker (the
 * snapshot store as root, the rootless unpacker for a user), and a registry client
 * configured from flags, auth files and registries.conf. Library modules never read
 * global state; this is where environment and flags become objects.
 */
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import type { ContentStore } from '../content/types.ts';
import type { LayerUnpacker, ManifestSource } from '../image/pull.ts';
import type { ImageReference } from '../reference/index.ts';
import { BerthError } from '../base/errors.ts';

export interface Services {
  root: string;
  store: ContentStore;
  unpacker?: LayerUnpacker;
}

export interface ServiceOptions {
  /** The store root (see storeRootFor). */
  root: string;
  /** false: the content store only (listing, rmi). */
  unpack?: boolean;
  /** erofs or dir (--snapshot-format / BERTH_SNAPSHOT_FORMAT); root's snapshot store only. */
  snapshotFormat?: string;
  /** How layers become snapshots: root's snapshot store, or unpacked inside the user's mapping. */
  unpacker?: 'snapshots' | 'rootless';
  notice?: (message: string) => void;
  /**
   * The caller needs the whole SnapshotStore (fsck, import, image mount), which only root's
   * snapshot store has: with the rootless unpacker this is UNSUPPORTED.
   */
  snapshotStore?: boolean;
}

/** `--root DIR` beats `BERTH_ROOT`, which beats /var/lib/berth (root) or $XDG_DATA_HOME/berth (a user), as Podman splits them. */
export function storeRootFor(i: { root?: string; env: NodeJS.ProcessEnv; uid: number; home: string }): string {
  if (i.root) return resolvePath(i.root);
  if (i.env.BERTH_ROOT) return resolvePath(i.env.BERTH_ROOT);
  if (i.uid === 0) return '/var/lib/berth';
  return join(i.env.XDG_DATA_HOME || join(i.home, '.local', 'share'), 'berth');
}

function resolvePath(p: string): string {
  return resolve(p);
}

export async function openServices(o: ServiceOptions): Promise<Services> {
  const { openStore } = await import('../content/index.ts');
  const store = await openStore(o.root);
  let unpacker: LayerUnpacker | undefined;
  if (o.unpack !== false) {
    if (o.unpacker === 'rootless') {
      if (o.snapshotStore) {
        throw new BerthError('UNSUPPORTED', "this command works on root's snapshot store only; a user's dir snapshots are made by `berth pull` (fsck, import and image mount of a user's store are not built yet)");
      }
      // Dir snapshots unpacked inside the user's subordinate-ID mapping while the layer
      // streams, tar confined by bwrap to the layer's work dir (snapshot/rootless-unpack).
      // probeHost refuses first when the user has no subordinate range or newuidmap.
      const { probeHost } = await import('../runtime/bwrap/host.ts');
      const { createRootlessUnpacker } = await import('../snapshot/rootless-unpack.ts');
      const u = userInfo();
      const f = await probeHost({ user: { name: u.username, uid: u.uid, gid: u.gid } });
      unpacker = createRootlessUnpacker({ root: o.root, idmap: { subuid: f.subuid, subgid: f.subgid } });
    } else {
      const snap = await import('../snapshot/index.ts').catch(() => undefined);
      const format = o.snapshotFormat;
      if (format !== undefined && format !== 'erofs' && format !== 'dir') {
        throw new BerthError('INVALID_ARGUMENT', `BERTH_SNAPSHOT_FORMAT must be erofs or dir, not "${format}"`);
      }
      if (snap) unpacker = await snap.openUnpacker(join(o.root, 'snapshots'), { ...(format ? { format } : {}), ...(o.notice ? { notice: o.notice } : {}) });
    }
  }
  return { root: o.root, store, unpacker };
}

/** CONTAINERS_REGISTRIES_CONF replaces /etc/containers/registries.conf, as in Podman and Skopeo. */
export function registriesConfPaths(env: NodeJS.ProcessEnv = process.env): { file?: string } {
  return env.CONTAINERS_REGISTRIES_CONF ? { file: env.CONTAINERS_REGISTRIES_CONF } : {};
}

export interface RegistryFlags {
  tlsVerify?: boolean;
  authfile?: string;
  creds?: string;
}

function parseCreds(s: string): { username: string; password: string } {
  const i = s.indexOf(':');
  if (i <= 0) throw new BerthError('INVALID_ARGUMENT', '--creds must be USER:PASSWORD');
  return { username: s.slice(0, i), password: s.slice(i + 1) };
}

/** A ManifestSource for ref: mirrors from registries.conf first, then the registry itself. */
export async function registryFor(ref: ImageReference, flags: RegistryFlags): Promise<ManifestSource> {
  const { RegistryClient } = await import('../registry/index.ts');
  const { lookupCredentials } = await import('../registry/auth-file.ts');
  const { loadRegistriesConfig } = await import('../registry/registries-conf.ts');
  const { credentialsFor } = await import('../registry/creds-scope.ts');
  const conf = await loadRegistriesConfig(registriesConfPaths());
  if (conf.isBlocked(ref.registry)) throw new BerthError('PERMISSION_DENIED', `registry ${ref.registry} is blocked in registries.conf`);
  // --creds go only to the registry the user named in the reference, never to a mirror
  // from registries.conf (which may be plain HTTP or another party's host); a mirror gets
  // what the auth files hold for it, like any other registry.
  const explicit = flags.creds ? parseCreds(flags.creds) : undefined;
  const client = new RegistryClient({
    credentials: credentialsFor(ref.registry, explicit, (host, repo) => lookupCredentials(host, repo, flags.authfile ? { files: [flags.authfile] } : {})),
    insecure: (host: string) => flags.tlsVerify === false || conf.isInsecure(host),
  });
  const { MirroredSource } = await import('../image/mirrors.ts');
  return new MirroredSource(client, conf.endpointsFor(ref));
}
