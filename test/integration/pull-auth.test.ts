/**
 * Authentication against real registries: htpasswd basic auth and the bearer-token flow
 * (distribution verifying JWTs from a token service), credentials from --creds, from
 * auth.json written by `berth login`, and `berth logout`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startRegistry, pushImage, type Registry } from '../fixtures/registry.ts';
import { buildImage } from '../fixtures/images.ts';
import { berthEnv } from '../fixtures/berth.ts';

let basic: Registry;
let token: Registry;

before(async () => {
  const img = await buildImage('busybox');
  basic = await startRegistry({ auth: 'htpasswd' });
  token = await startRegistry({ auth: 'token' });
  await pushImage(basic, img.layoutDir, img.tag, 'private/busybox:latest', { creds: basic.creds });
  await pushImage(token, img.layoutDir, img.tag, 'public/busybox:latest', { creds: token.creds });
  await pushImage(token, img.layoutDir, img.tag, 'private/busybox:latest', { creds: token.creds });
});
after(async () => {
  await basic?.stop();
  await token?.stop();
});

describe('basic auth (htpasswd)', () => {
  test('anonymous pull is unauthorized (exit 9), --creds works', async () => {
    const b = await berthEnv('berth-auth');
    const r = await b.run(['pull', `${basic.host}/private/busybox:latest`]);
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, new RegExp(basic.host.replace(/\./g, '\\.')));
    const ok = await b.run(['pull', '--creds', basic.creds, `${basic.host}/private/busybox:latest`]);
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('wrong password is unauthorized', async () => {
    const b = await berthEnv('berth-auth');
    const r = await b.run(['pull', '--creds', 'tester:wrong', `${basic.host}/private/busybox:latest`]);
    assert.equal(r.code, 9, r.stderr);
  });

  test('login writes auth.json 0600, pull uses it, logout removes it', async () => {
    const b = await berthEnv('berth-login');
    const file = join(b.home, 'auth.json');
    const bad = await b.run(['login', '-u', 'tester', '--password-stdin', '--authfile', file, basic.host], { input: 'nope\n' });
    assert.equal(bad.code, 9, bad.stderr);
    await assert.rejects(stat(file));
    const r = await b.run(['login', '-u', 'tester', '--password-stdin', '--authfile', file, basic.host], { input: 'testpass\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const auths = JSON.parse(await readFile(file, 'utf8')).auths;
    assert.equal(Buffer.from(auths[basic.host].auth, 'base64').toString(), 'tester:testpass');
    const p = await b.run(['pull', '--authfile', file, `${basic.host}/private/busybox:latest`]);
    assert.equal(p.code, 0, p.stderr);
    const out = await b.run(['logout', '--authfile', file, basic.host]);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')).auths, {});
  });

  test('default auth file: ~/.config/containers/auth.json is read', async () => {
    const b = await berthEnv('berth-login-default');
    const r = await b.run(['login', '-u', 'tester', '-p', 'testpass', basic.host]);
    assert.equal(r.code, 0, r.stderr);
    const st = await stat(join(b.home, '.config', 'containers', 'auth.json'));
    assert.equal(st.mode & 0o777, 0o600);
    const p = await b.run(['pull', '-q', `${basic.host}/private/busybox:latest`]);
    assert.equal(p.code, 0, p.stderr);
  });
});

describe('bearer tokens', () => {
  test('anonymous token for a public repository', async () => {
    const b = await berthEnv('berth-token');
    const r = await b.run(['pull', `${token.host}/public/busybox:latest`]);
    assert.equal(r.code, 0, r.stderr);
    const reqs = token.tokenService!.requests;
    assert.ok(reqs.some((q) => q.scopes.includes('repository:public/busybox:pull')));
  });

  test('private repository: unauthorized without credentials, works with them', async () => {
    const b = await berthEnv('berth-token');
    const r = await b.run(['pull', `${token.host}/private/busybox:latest`]);
    assert.equal(r.code, 9, r.stderr);
    const ok = await b.run(['pull', '--creds', token.creds, `${token.host}/private/busybox:latest`]);
    assert.equal(ok.code, 0, ok.stderr);
  });
});

describe('registries.conf', () => {
  test('a mirror serves a registry that cannot be reached (CONTAINERS_REGISTRIES_CONF)', async () => {
    const b = await berthEnv('berth-mirror');
    const conf = join(b.home, 'registries.conf');
    await writeFile(conf, [
      '[[registry]]',
      'prefix = "origin.invalid"',
      'location = "origin.invalid"',
      '[[registry.mirror]]',
      `location = "${basic.host}"`,
      'insecure = true',
      '',
    ].join('\n'));
    const env = { CONTAINERS_REGISTRIES_CONF: conf };
    // --creds belong to origin.invalid only: the (plain-HTTP) mirror never sees them, so it
    // answers 401, is skipped, and the unreachable origin's error is the one reported ...
    const refused = await b.run(['pull', '-q', '--creds', basic.creds, 'origin.invalid/private/busybox:latest'], { env });
    assert.equal(refused.code, 6, refused.stderr);
    // ... it gets what the auth file holds for the mirror's own host
    const authfile = join(b.home, 'auth.json');
    await writeFile(authfile, JSON.stringify({ auths: { [basic.host]: { auth: Buffer.from(basic.creds).toString('base64') } } }));
    const r = await b.run(['pull', '-q', '--authfile', authfile, 'origin.invalid/private/busybox:latest'], { env });
    assert.equal(r.code, 0, r.stderr);
    const ls = JSON.parse((await b.run(['images', '--json'], { env })).stdout) as Array<{ Name: string }>;
    assert.deepEqual(ls.map((i) => i.Name), ['origin.invalid/private/busybox:latest']);
    const blocked = join(b.home, 'blocked.conf');
    await writeFile(blocked, '[[registry]]\nlocation = "origin.invalid"\nblocked = true\n');
    const no = await b.run(['pull', 'origin.invalid/private/busybox:latest'], { env: { CONTAINERS_REGISTRIES_CONF: blocked } });
    assert.equal(no.code, 18, no.stderr);
    assert.match(no.stderr, /blocked/);
  });
});

describe('TLS', () => {
  test('a self-signed registry: refused with a TLS error (exit 7), pulled with --tls-verify=false', async () => {
    const tls = await startRegistry({ tls: true });
    try {
      const img = await buildImage('busybox');
      await pushImage(tls, img.layoutDir, img.tag, 'tls/busybox:latest');
      const b = await berthEnv('berth-tls');
      const r = await b.run(['pull', `${tls.host}/tls/busybox:latest`]);
      assert.equal(r.code, 7, r.stderr);
      assert.match(r.stderr, /TLS: .*--tls-verify=false/);
      const ok = await b.run(['pull', '-q', '--tls-verify=false', `${tls.host}/tls/busybox:latest`]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout.trim(), img.manifestDigest);
      // Trusted through NODE_EXTRA_CA_CERTS, with verification on. bin/berth keeps the file
      // away from Node's start-up and berth loads it at the first TLS connection instead.
      const ca = join(tls.dir, 'tls.crt');
      const b2 = await berthEnv('berth-tls-ca');
      const viaCa = await b2.run(['pull', '-q', `${tls.host}/tls/busybox:latest`], { env: { NODE_EXTRA_CA_CERTS: ca } });
      assert.equal(viaCa.code, 0, viaCa.stderr);
      assert.equal(viaCa.stdout.trim(), img.manifestDigest);
      // An unreadable file is ignored with a warning naming it (as Node does); the pull then
      // fails on the untrusted certificate, not on the file.
      const b3 = await berthEnv('berth-tls-noca');
      const bad = await b3.run(['pull', '-q', `${tls.host}/tls/busybox:latest`], { env: { NODE_EXTRA_CA_CERTS: join(tls.dir, 'missing.crt') } });
      assert.equal(bad.code, 7, bad.stderr);
      assert.match(bad.stderr, /ignoring extra CA certificates from .*missing\.crt/);
      // A FIFO is refused without blocking (Node itself would wait for a writer at start-up).
      const fifo = join(tls.dir, 'ca.fifo');
      execFileSync('mkfifo', [fifo]);
      const blocked = await b3.run(['pull', '-q', `${tls.host}/tls/busybox:latest`], { env: { NODE_EXTRA_CA_CERTS: fifo }, timeoutMs: 30_000 });
      assert.equal(blocked.code, 7, blocked.stderr);
      assert.match(blocked.stderr, /ignoring extra CA certificates from .*ca\.fifo .*not a regular file/);
    } finally {
      await tls.stop();
    }
  });
});
