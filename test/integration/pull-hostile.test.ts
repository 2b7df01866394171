/**
 * Integration (root): the hostile-image corpus (test/fixtures/hostile-images.ts) pulled
 * from a real docker-registry, for both snapshot formats. Every case either fails with its
 * exit code and a one-line message naming the problem, or succeeds; in both cases nothing
 * outside the store changes (a canary tree, its xattrs, /etc/passwd and everything next
 * to the store are compared) and `berth image fsck` is clean afterwards, with no work
 * area and no lease left behind.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { startRegistry, pushImage, type Registry } from '../fixtures/registry.ts';
import { startFaultProxy, type FaultProxy } from '../fixtures/fault-proxy.ts';
import { berthEnv } from '../fixtures/berth.ts';
import { buildHostile, hostileCases, type BuiltHostile, type HostileCase } from '../fixtures/hostile-images.ts';
import { run, tempDir } from '../fixtures/util.ts';

let reg: Registry;
let proxy: FaultProxy;
let work: string;
let canary: string;
let cases: HostileCase[];
const built: BuiltHostile[] = [];

before(async () => {
  work = await tempDir('berth-pull-hostile');
  canary = join(work, 'canary');
  await mkdir(join(canary, 'sub'), { recursive: true });
  await writeFile(join(canary, 'keep'), 'canary\n');
  await writeFile(join(canary, 'sub', 'keep'), 'canary too\n');
  await writeFile(join(work, 'pwned-not'), 'sibling of the canary\n');
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.url);
  cases = hostileCases(canary);
  for (const [i, c] of cases.entries()) {
    const b = await buildHostile(join(work, 'images'), c, i);
    built.push(b);
    if (c.manifest || c.served) {
      proxy.add({ path: new RegExp(`^/v2/hostile/case-${i}/manifests/latest$`), times: Infinity,
        action: { type: 'status', status: 200, body: b.manifest.toString('utf8'), headers: { 'content-type': b.mediaType } } });
    } else {
      await pushImage(reg, b.layoutDir, b.tag, `hostile/case-${i}:latest`);
    }
  }
});
after(async () => {
  await proxy?.close();
  await reg?.stop();
});

/** Everything outside the store an attack could touch, as text. */
async function outside(storeDir: string): Promise<string> {
  const tree = await run(['find', dirname(storeDir), work, '-path', storeDir, '-prune', '-o', '-path', join(work, 'images'), '-prune', '-o', '-printf', '%p %y %m %U:%G %s %l\n']);
  const xattrs = await run(['getfattr', '-R', '-h', '-d', '-m', '-', '--absolute-names', canary], { reject: false });
  const hash = async (p: string) => createHash('sha256').update(await readFile(p)).digest('hex');
  return [tree.stdout.split('\n').sort().join('\n'), xattrs.stdout, await hash('/etc/passwd'), await hash(join(canary, 'keep'))].join('\n');
}

/** Metadata cases fail before any layer is unpacked: one format is enough for them. */
const formatMatters = (c: HostileCase): boolean => c.code !== 15;

for (const format of ['erofs', 'dir']) {
  test(`${format}: the hostile-image corpus`, async (t) => {
    for (const [i, c] of cases.entries()) {
      if (format === 'dir' && !formatMatters(c)) continue;
      await t.test(`${format}: ${c.name} → exit ${c.code}`, async () => {
        const b = await berthEnv('berth-hostile');
        const before = await outside(b.root);
        const r = await b.run(['--snapshot-format', format, 'pull', `${proxy.host}/hostile/case-${i}:latest`]);
        assert.equal(r.code, c.code, `${r.stdout}${r.stderr}`);
        if (c.code !== 0) {
          assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
          assert.match(r.stderr, /^berth: /);
          if (c.message) assert.match(r.stderr, c.message);
        }
        assert.equal(await outside(b.root), before, 'nothing outside the store changed');
        const f = await b.run(['image', 'fsck']);
        assert.equal(f.code, 0, `fsck: ${f.stdout}${f.stderr}`);
        assert.deepEqual(await readdir(join(b.root, 'snapshots', 'work')).catch(() => []), [], 'no work area left');
        assert.deepEqual(await readdir(join(b.root, 'leases')).catch(() => []), [], 'no lease left');
        const index = JSON.parse(await readFile(join(b.root, 'index.json'), 'utf8')) as { manifests: unknown[] };
        assert.equal(index.manifests.length, c.code === 0 ? 1 : 0, 'a refused image is not named');
      });
    }
  });
}

test('a --root that others may write to is refused before anything is read', async () => {
  const b = await berthEnv('berth-hostile-root');
  const root = join(work, 'open-root');
  await mkdir(root, { mode: 0o777 });
  await run(['chmod', '0777', root]);
  const r = await b.run(['--root', root, 'pull', `${proxy.host}/hostile/case-0:latest`]);
  assert.equal(r.code, 18, r.stderr);
  assert.match(r.stderr, new RegExp(`${root} is world-writable .*chmod go-w ${root}`));
  assert.deepEqual(await readdir(root), [], 'nothing created in it');
  const env = await b.run(['images'], { env: { BERTH_ROOT: root } });
  assert.equal(env.code, 18, env.stderr);
});

test('a signed blob redirect URL and what the storage echoes of it stay out of errors, also with --debug', async () => {
  const i = cases.findIndex((c) => c.code === 0 && !c.manifest && !c.served);
  const layer = JSON.parse(built[i]!.manifest.toString('utf8')).layers[0].digest as string;
  const secret = 'X-Amz-Signature=deadbeefcafe&X-Amz-Credential=AKIAEXAMPLE';
  const rules = [
    proxy.add({ path: new RegExp(`/blobs/${layer}$`), times: Infinity, action: { type: 'status', status: 307, headers: { location: `${proxy.url}/storage/blob?${secret}` } } }),
    proxy.add({ path: /^\/storage\//, times: Infinity, action: { type: 'status', status: 403, body: JSON.stringify({ errors: [{ code: 'DENIED', message: `signature expired: /storage/blob?${secret}` }] }) } }),
  ];
  try {
    const b = await berthEnv('berth-hostile-redact');
    const r = await b.run(['--debug', 'pull', `${proxy.host}/hostile/case-${i}:latest`]);
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, /DENIED: signature expired: \/storage\/blob\?<redacted>/);
    assert.match(r.stderr, /at httpError/, '--debug printed the cause');
    for (const s of ['deadbeef', 'AKIAEXAMPLE']) assert.ok(!`${r.stdout}${r.stderr}`.includes(s), `leaked ${s}: ${r.stderr}`);
  } finally {
    for (const rule of rules) proxy.rules.splice(proxy.rules.indexOf(rule), 1);
  }
});
