/**
 * @module cli/commands/login
 * `berth login` checks the credentials against the registry before writing them (as
 * `podman login` does), so a typo never lands in auth.json; `berth logout` removes them.
 */
import type { GlobalOptions } from '../program.ts';
import { BerthError } from '../../base/errors.ts';
import { createInterface } from 'node:readline';
import { registriesConfPaths } from '../services.ts';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function prompt(q: string, hidden: boolean): Promise<string> {
  if (!process.stdin.isTTY) throw new BerthError('INVALID_ARGUMENT', `${q.replace(/: $/, '')} required (use -u/-p or --password-stdin)`);
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (hidden) (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
    if (s.includes(q)) process.stderr.write(s);
  };
  try {
    return await new Promise((res) => rl.question(q, res));
  } finally {
    rl.close();
    if (hidden) process.stderr.write('\n');
  }
}

function normalizeRegistry(r: string): string {
  const s = r.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  return s === 'index.docker.io' || s === 'registry-1.docker.io' ? 'docker.io' : s;
}

export async function loginCommand(
  registry: string,
  flags: { username?: string; password?: string; passwordStdin?: boolean; authfile?: string; tlsVerify?: boolean },
  _g: GlobalOptions,
): Promise<void> {
  const host = normalizeRegistry(registry);
  const username = flags.username ?? (await prompt('Username: ', false));
  let password = flags.password;
  if (flags.passwordStdin) {
    if (flags.password) throw new BerthError('INVALID_ARGUMENT', '--password and --password-stdin are mutually exclusive');
    password = await readStdin();
  }
  password ??= await prompt('Password: ', true);
  if (!username || !password) throw new BerthError('INVALID_ARGUMENT', 'username and password must not be empty');
  const { RegistryClient } = await import('../../registry/index.ts');
  const { writeLogin, defaultLoginFile } = await import('../../registry/auth-file.ts');
  const { loadRegistriesConfig } = await import('../../registry/registries-conf.ts');
  const conf = await loadRegistriesConfig(registriesConfPaths());
  const client = new RegistryClient({ insecure: (h: string) => flags.tlsVerify === false || conf.isInsecure(h) });
  await client.checkLogin(host, { username, password });
  const file = flags.authfile ?? defaultLoginFile();
  await writeLogin(file, host, username, password);
  process.stdout.write('Login Succeeded!\n');
}

export async function logoutCommand(registry: string | undefined, flags: { all?: boolean; authfile?: string }, _g: GlobalOptions): Promise<void> {
  const { removeLogin, removeAllLogins, defaultLoginFile } = await import('../../registry/auth-file.ts');
  const file = flags.authfile ?? defaultLoginFile();
  if (flags.all) {
    await removeAllLogins(file);
    process.stdout.write('Removed login credentials for all registries\n');
    return;
  }
  if (!registry) throw new BerthError('INVALID_ARGUMENT', 'logout needs a registry name, or --all');
  const host = normalizeRegistry(registry);
  const removed = await removeLogin(file, host);
  if (!removed) throw new BerthError('NOT_FOUND', `not logged in to ${host}`);
  process.stdout.write(`Removed login credentials for ${host}\n`);
}
