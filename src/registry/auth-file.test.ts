import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError } from '../base/errors.ts';
import {
  authFileCandidates, defaultLoginFile, lookupCredentials, normalizeAuthKey, removeLogin, writeLogin, removeAllLogins,
} from './auth-file.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'berth-auth-'));
}

test('candidate files and default login file follow REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, home', () => {
  assert.deepEqual(authFileCandidates({ REGISTRY_AUTH_FILE: '/a.json', XDG_RUNTIME_DIR: '/run/user/0' }, '/root'), [
    '/a.json', '/run/user/0/containers/auth.json', '/root/.config/containers/auth.json', '/root/.docker/config.json',
  ]);
  assert.deepEqual(authFileCandidates({}, '/h'), ['/h/.config/containers/auth.json', '/h/.docker/config.json']);
  assert.equal(defaultLoginFile({ XDG_RUNTIME_DIR: '/run/user/0' }, '/root'), '/run/user/0/containers/auth.json');
  assert.equal(defaultLoginFile({}, '/root'), '/root/.config/containers/auth.json');
  assert.equal(defaultLoginFile({ REGISTRY_AUTH_FILE: '/x', XDG_RUNTIME_DIR: '/r' }, '/root'), '/x');
});

test('normalizeAuthKey', () => {
  assert.equal(normalizeAuthKey('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(normalizeAuthKey('registry-1.docker.io'), 'docker.io');
  assert.equal(normalizeAuthKey('http://localhost:5000/v2/'), 'localhost:5000');
  assert.equal(normalizeAuthKey('quay.io/org/'), 'quay.io/org');
});

test('lookup: first file with a match wins; most specific key wins; docker legacy key', async () => {
  const d = await tmp();
  const f1 = join(d, 'one.json');
  const f2 = join(d, 'two.json');
  await writeFile(f1, JSON.stringify({ auths: {
    'quay.io': { auth: b64('q:general') },
    'quay.io/team': { auth: b64('q:team') },
    'quay.io/team/app': { identitytoken: 'tok' },
  } }));
  await writeFile(f2, JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('hub:p:w') }, 'quay.io': { auth: b64('other:x') } } }));
  const files = [join(d, 'missing.json'), f1, f2];
  assert.deepEqual(await lookupCredentials('quay.io', 'library/x', { files }), { username: 'q', password: 'general' });
  assert.deepEqual(await lookupCredentials('quay.io', 'team/other', { files }), { username: 'q', password: 'team' });
  assert.deepEqual(await lookupCredentials('quay.io', 'team/app', { files }), { identitytoken: 'tok' });
  assert.deepEqual(await lookupCredentials('docker.io', 'library/busybox', { files }), { username: 'hub', password: 'p:w' });
  assert.equal(await lookupCredentials('ghcr.io', undefined, { files }), undefined);
});

test('malformed JSON and malformed auth name the file', async () => {
  const d = await tmp();
  const f = join(d, 'auth.json');
  await writeFile(f, '{"auths": {');
  await assert.rejects(lookupCredentials('x.io', undefined, { files: [f] }), (e: unknown) => isBerthError(e, 'INVALID_ARGUMENT') && e.message.includes(f));
  await writeFile(f, JSON.stringify({ auths: { 'x.io': { auth: b64('nocolon') } } }));
  await assert.rejects(lookupCredentials('x.io', undefined, { files: [f] }), (e: unknown) => isBerthError(e, 'INVALID_ARGUMENT') && e.message.includes(f) && e.message.includes('x.io'));
});

test('writeLogin/removeLogin: atomic, 0600 file in a 0700 dir, other keys preserved', async () => {
  const d = await tmp();
  const f = join(d, 'nested', 'containers', 'auth.json');
  await writeLogin(f, 'quay.io', 'u', 'p');
  assert.equal((await stat(f)).mode & 0o777, 0o600);
  assert.equal((await stat(join(d, 'nested', 'containers'))).mode & 0o777, 0o700);
  assert.deepEqual(await lookupCredentials('quay.io', 'a/b', { files: [f] }), { username: 'u', password: 'p' });

  await writeFile(f, JSON.stringify({ credHelpers: { x: 'y' }, auths: { 'https://index.docker.io/v1/': { auth: b64('old:old') } } }));
  await writeLogin(f, 'docker.io', 'new', 'pw');
  const j = JSON.parse(await readFile(f, 'utf8'));
  assert.deepEqual(Object.keys(j.auths), ['docker.io'], 'legacy key replaced');
  assert.deepEqual(j.credHelpers, { x: 'y' });
  assert.equal((await stat(f)).mode & 0o777, 0o600);

  await writeLogin(f, 'localhost:5000', 'a', 'b');
  assert.equal(await removeLogin(f, 'docker.io'), true);
  assert.equal(await removeLogin(f, 'docker.io'), false);
  assert.deepEqual(Object.keys(JSON.parse(await readFile(f, 'utf8')).auths), ['localhost:5000']);
  assert.equal(await removeAllLogins(f), true);
  assert.deepEqual(JSON.parse(await readFile(f, 'utf8')).auths, {});
  assert.equal(await removeLogin(join(d, 'none.json'), 'x'), false);
});
