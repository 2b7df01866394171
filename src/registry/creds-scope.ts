/**
 * @module registry/creds-scope
 * Which credentials a pull may send where. Explicit `--creds` belong to the registry the
 * user named in the reference and go nowhere else: not to a mirror from registries.conf
 * (another party's host, possibly plain HTTP), not to a registry a redirect leads to.
 * Every other host gets what the auth files hold for it, keyed by that host.
 */
import type { CredentialLookup, Credentials } from './types.ts';

export function credentialsFor(registry: string, explicit: Credentials | undefined, files: CredentialLookup): CredentialLookup {
  return (host, repo) => (explicit !== undefined && host === registry ? explicit : files(host, repo));
}
