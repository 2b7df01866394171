/**
 * @module registry
 * Public surface of the registry module: the distribution-API pull client, credentials
 * files and registries.conf. Other modules import from here only.
 */
export { RegistryClient, retryChannel } from './client.ts';
export type {
  Credentials, CredentialLookup, RepoLocation, RegistryClientOptions, RegistryTimeouts,
  ManifestResult, BlobDescriptor, FetchBlobOptions,
} from './types.ts';
export {
  lookupCredentials, writeLogin, removeLogin, removeAllLogins, defaultLoginFile, authFileCandidates, normalizeAuthKey,
} from './auth-file.ts';
export {
  loadRegistriesConfig, parseRegistriesConf, DEFAULT_REGISTRIES_CONF, DEFAULT_REGISTRIES_CONF_DIR,
} from './registries-conf.ts';
export type { RegistriesConfig, RegistryEntry, MirrorEntry, Endpoint, PullFromMirror } from './registries-conf.ts';
export { isLoopbackHost } from './transport.ts';
