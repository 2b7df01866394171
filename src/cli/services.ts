/**
 * @module cli/services
 * Opens what commands need, once per process: the content store at the chosen root, the
 * snapshotter, and a registry client configured from flags, auth files and
 * registries.conf. Kept in the CLI layer so library modules never read global state.
 */
import { join } from 'node:path';
import type { GlobalOptions } from './program.ts';
import { storeRoot } from './context.ts';
import type { ContentStore } from '../content/types.ts';
import type { LayerUnpacker, ManifestSource } from '../image/pull.ts';
import type { ImageReference } from '../reference/index.ts';
import { BerthError } from '../base/errors.ts';

export interface Services {
  root: string;
  store: ContentStore;
  unpacker?: LayerUnpacker;
}

export async function openServices(g: GlobalOptions, opts: { unpack?: boolean } = {}): Promise<Services> {
  const root = storeRoot(g);
  const { openStore } = await import('../content/index.ts');
  const store = await openStore(root);
  let unpacker: LayerUnpacker | undefined;
  if (opts.unpack !== false) {
    const snap = await import('../snapshot/index.ts').catch(() => undefined);
    const format = g.snapshotFormat ?? process.env.BERTH_SNAPSHOT_FORMAT;
    if (format !== undefined && format !== 'erofs' && format !== 'dir') {
      throw new BerthError('INVALID_ARGUMENT', `BERTH_SNAPSHOT_FORMAT must be erofs or dir, not "${format}"`);
    }
    if (snap) unpacker = await snap.openUnpacker(join(root, 'snapshots'), {
      ...(format ? { format } : {}),
      notice: (m) => process.stderr.write(`berth: ${m}\n`),
    });
  }
  return { root, store, unpacker };
}

/** CONTAINERS_REGISTRIES_CONF replaces /etc/containers/registries.conf, as in Podman and Skopeo. */
export function registriesConfPaths(): { file?: string } {
  return process.env.CONTAINERS_REGISTRIES_CONF ? { file: process.env.CONTAINERS_REGISTRIES_CONF } : {};
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
