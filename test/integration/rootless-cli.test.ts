/**
 * @module test/integration/rootless-cli
 * `bin/berth` itself as an unprivileged user, end to end, in a booted systemd test host:
 * a docker-registry on the test host's 127.0.0.1 serves busybox; `tuser` (lingering,
 * subordinate ranges) pulls it into ~/.local/share/berth, runs it with `run -d -p`, and
 * uses ps, status, logs, exec, port, enable, stop and rm; the port is reached from the test
 * host's 127.0.0.1. The boundaries: tuser can neither see, stop, exec into nor read root's
 * machine or tuser2's container; root's `ps` does not list tuser's, `ps --user tuser` does
 * and refuses to change anything. tuser2 has a user manager but no lingering: enable says
 * so. Network: the test host has its own netns; nothing leaves it.
 */
import { strict as assert } from 'node:assert';
import { after, describe, test } from 'node:test';
import { chmodSync, cpSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, useTestHost, type TestHost } from '../testhost/index.ts';
import { buildImage } from '../fixtures/images.ts';
import { buildHostile, hostileCases } from '../fixtures/hostile-images.ts';
import { EXIT_CODES } from '../../src/base/errors.ts';

const NAME = `rlcli-${process.pid}`;
const PORT = 15000;
const IMG = `127.0.0.1:${PORT}/busybox:latest`;
const BERTH = join(repoRoot, 'bin', 'berth');
const STORE = '/home/tuser/.local/share/berth';
const HTTP_PORT = 18091;

describe('berth as an unprivileged user: the CLI through the manager and the bwrap runtime', { timeout: 400_000 }, () => {
  const shared = mkdtempSync(join(tmpdir(), 'berth-rlcli-'));
  chmodSync(shared, 0o755);
  const host = useTestHost({ name: NAME, binds: [{ host: realpathSync(join(repoRoot, 'node_modules')), ro: true }, { host: shared, ro: true }] });
  after(() => rmSync(shared, { recursive: true, force: true }));
  const uids: Record<string, number> = {};

  const sh = (h: TestHost, script: string) => h.exec(['sh', '-euc', script]);

  /** bin/berth as `user` (root: no user), with the user's manager and bus in the environment. */
  async function berth(user: string, args: string[]) {
    const env: Record<string, string> = user === 'root' ? {} : {
      HOME: `/home/${user}`, XDG_RUNTIME_DIR: `/run/user/${uids[user]}`, DBUS_SESSION_BUS_ADDRESS: `unix:path=/run/user/${uids[user]}/bus`,
    };
    return host().run([BERTH, ...args], { ...(user === 'root' ? {} : { user }), reject: false, timeoutMs: 120_000, env });
  }

  async function ok(user: string, args: string[]): Promise<string> {
    const r = await berth(user, args);
    assert.equal(r.exitCode, 0, `${user}: berth ${args.join(' ')}: exit ${r.exitCode}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  async function refused(user: string, args: string[], code: keyof typeof EXIT_CODES, match: RegExp): Promise<void> {
    const r = await berth(user, args);
    assert.equal(r.exitCode, EXIT_CODES[code], `${user}: berth ${args.join(' ')}: expected ${code}, got exit ${r.exitCode}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, match);
  }

  async function curl(url: string): Promise<string> {
    let body = '';
    for (let i = 0; i < 40 && body === ''; i++) {
      body = (await host().exec(['curl', '-sf', '-m', '2', url], { reject: false })).stdout;
      if (body === '') await new Promise((r) => setTimeout(r, 150));
    }
    return body;
  }

  test('setup: a registry on the test host\'s 127.0.0.1 with busybox; users with ranges; tuser lingering, tuser2 a manager without', async () => {
    const h = host();
    const img = await buildImage('busybox');
    cpSync(img.layoutDir, join(shared, 'busybox'), { recursive: true });
    await sh(h, [
      'touch /etc/subuid /etc/subgid',
      'useradd -m tuser', 'useradd -m tuser2',
      'loginctl enable-linger tuser',
      'chmod 666 /dev/net/tun',
      // pasta needs a default route to copy; nothing answers behind it.
      'ip link add rc0 type veth peer name rc1', 'ip addr add 10.214.0.2/24 dev rc0', 'ip link set rc0 up', 'ip link set rc1 up',
      'ip route add default via 10.214.0.1',
      'mkdir -p /var/log/journal', 'journalctl --flush',
      'mkdir -p /srv/registry',
      `printf 'version: 0.1\\nlog:\\n  level: warn\\nstorage:\\n  filesystem:\\n    rootdirectory: /srv/registry\\nhttp:\\n  addr: 127.0.0.1:${PORT}\\n' > /srv/registry.yml`,
      'systemd-run --unit=berth-test-registry docker-registry serve /srv/registry.yml',
    ].join('\n'));
    for (const u of ['tuser', 'tuser2']) uids[u] = Number((await h.exec(['id', '-u', u])).stdout.trim());
    // tuser2: a running user manager (as a login would start it) but lingering off.
    await h.exec(['systemctl', 'start', `user@${uids.tuser2}.service`]);
    for (const u of ['tuser', 'tuser2']) {
      for (let i = 0; i < 50 && (await h.exec(['test', '-S', `/run/user/${uids[u]}/bus`], { reject: false })).exitCode !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < 50 && (await h.exec(['curl', '-sf', `http://127.0.0.1:${PORT}/v2/`], { reject: false })).exitCode !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    await h.exec(['skopeo', 'copy', '-q', '--insecure-policy', '--dest-tls-verify=false', '--dest-no-creds', `oci:${join(shared, 'busybox')}:latest`, `docker://${IMG}`], { timeoutMs: 120_000 });
  });

  test('pull as tuser: into ~/.local/share/berth, layers unpacked inside the mapping (container root = tuser)', async () => {
    const h = host();
    const out = await ok('tuser', ['pull', '--tls-verify=false', IMG]);
    assert.match(out, /Status: pulled 127\.0\.0\.1:15000\/busybox:latest/);
    assert.match(await ok('tuser', ['images']), /127\.0\.0\.1:15000\/busybox\s+latest/);
    const owners = await h.exec(['sh', '-c', `stat -c %u:%g ${STORE}/snapshots/dir/*/fs/bin/busybox`]);
    assert.equal(owners.stdout.trim(), `${uids.tuser}:${uids.tuser}`);
    // root's store knows nothing of it
    assert.doesNotMatch(await ok('root', ['images']), /busybox/);
  });

  test('run -d -p, ps, status, logs, exec, port: a user unit reached on the test host\'s 127.0.0.1', async () => {
    const h = host();
    const t0 = performance.now();
    const out = await ok('tuser', ['run', '-d', '--name', 'web', '-p', `${HTTP_PORT}:80`, IMG, 'sh', '-c',
      'mkdir -p /www && echo hello-from-cli > /www/index.html && echo web-started && exec httpd -f -p 80 -h /www']);
    const runMs = Math.round(performance.now() - t0);
    assert.equal(out.trim(), 'web');
    assert.equal((await curl(`http://127.0.0.1:${HTTP_PORT}/index.html`)).trim(), 'hello-from-cli');
    const ps = await ok('tuser', ['ps']);
    assert.match(ps, /^web\s+127\.0\.0\.1:15000\/busybox:latest\s/m);
    const rows = JSON.parse(await ok('tuser', ['ps', '--json'])) as Array<{ name: string; status: string; unit: string; runtime: string }>;
    assert.deepEqual(rows.map((r) => [r.name, r.status, r.unit, r.runtime]), [['web', 'running', 'berth-sandbox@web.service', 'bwrap']]);
    const status = await ok('tuser', ['status', 'web']);
    assert.match(status, /berth-sandbox@web\.service/);
    assert.match(status, /State: running/);
    let logs = '';
    for (let i = 0; i < 30 && !/web-started/.test(logs); i++) {
      logs = await ok('tuser', ['logs', 'web']);
      if (!/web-started/.test(logs)) await new Promise((r) => setTimeout(r, 150));
    }
    assert.match(logs, /^web-started$/m);
    assert.equal((await ok('tuser', ['exec', 'web', 'cat', '/www/index.html'])).trim(), 'hello-from-cli');
    assert.equal((await berth('tuser', ['exec', 'web', 'sh', '-c', 'exit 7'])).exitCode, 7);
    // the systemd user unit is there for `systemctl --user` too
    const active = await h.run(['systemctl', '--user', 'is-active', 'berth-sandbox@web.service'], {
      user: 'tuser', reject: false, env: { XDG_RUNTIME_DIR: `/run/user/${uids.tuser}`, DBUS_SESSION_BUS_ADDRESS: `unix:path=/run/user/${uids.tuser}/bus` },
    });
    assert.equal(active.stdout.trim(), 'active');
    console.log(`# berth run -d -p as tuser (CLI start to active, image local): ${runMs} ms`);
  });

  // port, the linger warning and the attached run are the bwrap runtime's (branch rootless2);
  // where this tree still has its first cut of them, the assertion is a TODO, not a failure.
  test('port and enable as tuser; enable without lingering says so (tuser2)', async (t) => {
    const port = await ok('tuser', ['port', 'web']);
    if (port.trim() === '') t.todo('the bwrap runtime of this tree reports no ports yet');
    else assert.match(port, new RegExp(`^80/tcp -> 0\\.0\\.0\\.0:${HTTP_PORT}$`, 'm'));
    const en = await berth('tuser', ['enable', 'web']);
    assert.equal(en.exitCode, 0, en.stderr);
    assert.doesNotMatch(en.stderr, /linger/);
    assert.ok((await host().exec(['test', '-L', `/home/tuser/.config/systemd/user/default.target.wants/berth-sandbox@web.service`], { reject: false })).exitCode === 0);
    await ok('tuser', ['disable', 'web']);

    await ok('tuser2', ['pull', '--tls-verify=false', '-q', IMG]);
    await ok('tuser2', ['create', '--name', 'other', '--network', 'none', IMG, 'sleep', '1000']);
    const en2 = await berth('tuser2', ['enable', 'other']);
    assert.equal(en2.exitCode, 0, en2.stderr);
    if (en2.stderr.trim() === '') t.todo('the bwrap runtime of this tree gives no linger warning yet');
    else assert.match(en2.stderr, /^berth: other: lingering is off for tuser2: .*loginctl enable-linger tuser2/m);
    await ok('tuser2', ['start', 'other']);
  });

  test('boundaries: tuser cannot see, stop, exec into or read root\'s machine or tuser2\'s container', async () => {
    // root's machine in the test host (nspawn), from the same registry
    await ok('root', ['pull', '--tls-verify=false', '-q', IMG]);
    await ok('root', ['run', '-d', '--name', 'rootbox', '--network', 'none', IMG, 'sleep', '1000']);
    assert.match(await ok('root', ['ps']), /^rootbox\s/m);

    for (const target of ['rootbox', 'other']) {
      assert.doesNotMatch(await ok('tuser', ['ps', '-a']), new RegExp(`^${target}\\s`, 'm'));
      await refused('tuser', ['stop', target], 'NOT_FOUND', new RegExp(`no such container: ${target}`));
      await refused('tuser', ['exec', target, 'true'], 'NOT_FOUND', new RegExp(`no such container: ${target}`));
      await refused('tuser', ['logs', target], 'NOT_FOUND', new RegExp(`no such container: ${target}`));
      await refused('tuser', ['status', target], 'NOT_FOUND', new RegExp(`no such container: ${target}`));
      // rm -f of a name tuser does not have succeeds quietly (Docker's -f), touching nothing of anyone else's
      await berth('tuser', ['rm', '-f', target]);
      await refused('tuser', ['kill', target], 'NOT_FOUND', new RegExp(`no such container: ${target}`));
    }
    // and the others' containers are still there, untouched
    assert.match(await ok('root', ['ps']), /^rootbox\s/m);
    assert.match(await ok('tuser2', ['ps']), /^other\s/m);
    // the root backend and root's view are refused outright
    await refused('tuser', ['--runtime', 'nspawn', 'ps'], 'PERMISSION_DENIED', /nspawn runtime .*needs root/);
    await refused('tuser', ['ps', '--user', 'root'], 'PERMISSION_DENIED', /only root may look at another user's containers/);
    await refused('tuser', ['ps', '--user', 'tuser2'], 'PERMISSION_DENIED', /only root may/);
    // root's zones (and the machines in them) are not a user's business
    await refused('tuser', ['zone', 'ls'], 'UNSUPPORTED', /network zones belong to root's containers/);
    await refused('tuser', ['network', 'inspect', 'berth'], 'UNSUPPORTED', /network zones belong to root's containers/);
    // tuser2 sees nothing of tuser's
    assert.doesNotMatch(await ok('tuser2', ['ps', '-a']), /^web\s/m);
    await refused('tuser2', ['exec', 'web', 'true'], 'NOT_FOUND', /no such container: web/);
  });

  test('root: ps lists root\'s machines only; --user tuser shows tuser\'s, read-only', async () => {
    const own = await ok('root', ['ps', '-a']);
    assert.match(own, /^rootbox\s/m);
    assert.doesNotMatch(own, /^web\s/m);
    assert.match(await ok('root', ['ps', '--help']), /--user NAME/);
    const theirs = await ok('root', ['ps', '-a', '--user', 'tuser']);
    // The command comes from the drop-in's X-Berth Command= (it was "-" before).
    assert.match(theirs, /^web\s+127\.0\.0\.1:15000\/busybox:latest\s+sh -c mkdir -p \/www.*\s+active \(running\)/m);
    assert.doesNotMatch(theirs, /rootbox/);
    const rows = JSON.parse(await ok('root', ['ps', '--json', '--user', 'tuser'])) as Array<{ name: string; status: string; pid?: number }>;
    assert.deepEqual(rows.map((r) => [r.name, r.status]), [['web', 'running']]);
    assert.match(await ok('root', ['status', 'web', '--user', 'tuser']), /State: running/);
    assert.match(await ok('root', ['logs', 'web', '--user', 'tuser']), /^web-started$/m);
    await refused('root', ['stop', 'web', '--user', 'tuser'], 'PERMISSION_DENIED', /read-only view/);
    await refused('root', ['rm', '-f', 'web', '--user', 'tuser'], 'PERMISSION_DENIED', /read-only view/);
    await refused('root', ['ps', '--user', 'nosuchuser'], 'NOT_FOUND', /no such user: nosuchuser/);
    // tuser's unit dir is tuser's to arrange: root's view reads it as tuser, so a drop-in that
    // is a symlink to a root-only file shows nothing of it, and a FIFO does not hang root's berth
    const units = '/home/tuser/.config/systemd/user';
    await sh(host(), `printf '[X-Berth]\\nImage=ROOT-ONLY-SECRET\\n' > /root/berth-secret.conf && chmod 600 /root/berth-secret.conf`);
    await host().run(['sh', '-euc', `mkdir -p ${units}/berth-sandbox@peek.service.d ${units}/berth-sandbox@fifo.service.d
ln -s /root/berth-secret.conf ${units}/berth-sandbox@peek.service.d/50-berth.conf
mkfifo ${units}/berth-sandbox@fifo.service.d/50-berth.conf`], { user: 'tuser' });
    const t0 = performance.now();
    const peek = await ok('root', ['ps', '-a', '--json', '--user', 'tuser']);
    assert.ok(performance.now() - t0 < 9000, 'root\'s view waited on the FIFO');
    assert.doesNotMatch(peek, /ROOT-ONLY-SECRET/);
    assert.doesNotMatch(peek, /"fifo"/);
    await host().run(['rm', '-rf', `${units}/berth-sandbox@peek.service.d`, `${units}/berth-sandbox@fifo.service.d`], { user: 'tuser' });
    await refused('root', ['ps', '--user', '../etc'], 'INVALID_ARGUMENT', /not a user name/);
    assert.equal((await curl(`http://127.0.0.1:${HTTP_PORT}/index.html`)).trim(), 'hello-from-cli');
  });

  test('run --rm in the foreground as tuser: output and exit status relayed, nothing left', async (t) => {
    const r = await berth('tuser', ['run', '--rm', '--network', 'none', IMG, 'sh', '-c', 'echo attached-out; exit 5']);
    if (r.exitCode === EXIT_CODES.UNSUPPORTED && /attached run/.test(r.stderr)) t.todo('the bwrap runtime of this tree has no attached run yet');
    else {
      assert.equal(r.exitCode, 5, r.stderr);
      assert.match(r.stdout, /^attached-out$/m);
    }
    assert.equal((await ok('tuser', ['ps', '-a', '-q'])).trim(), 'web');
  });

  test('stop and rm as tuser: the port closes, the unit and every file go; root\'s machine stays', async () => {
    const h = host();
    await ok('tuser', ['stop', 'web']);
    assert.notEqual((await h.exec(['curl', '-sf', '-m', '2', `http://127.0.0.1:${HTTP_PORT}/`], { reject: false })).exitCode, 0);
    assert.match(await ok('tuser', ['ps', '-a']), /^web\s/m);
    assert.doesNotMatch(await ok('tuser', ['ps']), /^web\s/m);
    await ok('tuser', ['rm', 'web']);
    assert.equal((await ok('tuser', ['ps', '-a'])).trim().split('\n').length, 1);
    const left = await h.exec(['sh', '-c', `ls -A ${STORE}/sandboxes /home/tuser/.config/systemd/user`]);
    assert.doesNotMatch(left.stdout, /web/);
    await refused('tuser', ['status', 'web'], 'NOT_FOUND', /no such container: web/);
    await ok('root', ['rm', '-f', 'rootbox']);
    await ok('tuser2', ['rm', '-f', 'other']);
  });

  test('hostile images pulled as tuser: refused or harmless, never a write outside the store (the canary in tuser\'s home)', async () => {
    const h = host();
    const canary = '/home/tuser/canary';
    await sh(h, `mkdir -p ${canary} && echo keep > ${canary}/keep && chown -R tuser: ${canary}`);
    const before = (await h.exec(['sh', '-c', `find /home/tuser -path ${STORE} -prune -o -print | sort; cat ${canary}/keep`])).stdout;
    // registry-storable cases (manifest edits need the fault proxy): layer tricks and config fields
    const cases = hostileCases(canary).map((c, i) => ({ c, i })).filter(({ c }) => !c.manifest && !c.served);
    const results: string[] = [];
    for (const { c, i } of cases) {
      const b = await buildHostile(join(shared, 'hostile'), c, i);
      await h.exec(['skopeo', 'copy', '-q', '--insecure-policy', '--dest-tls-verify=false', '--dest-no-creds', `oci:${b.layoutDir}:${b.tag}`, `docker://127.0.0.1:${PORT}/hostile:${i}`], { timeoutMs: 60_000 });
      const r = await berth('tuser', ['pull', '-q', '--tls-verify=false', `127.0.0.1:${PORT}/hostile:${i}`]);
      results.push(`${r.exitCode === c.code ? 'ok  ' : 'DIFF'} ${i} ${c.name}: exit ${r.exitCode} (want ${c.code}) ${r.stderr.trim().split('\n')[0] ?? ''}`);
      // the attack's target is untouched, nothing new appeared outside the store
      assert.equal((await h.exec(['sh', '-c', `find /home/tuser -path ${STORE} -prune -o -print | sort; cat ${canary}/keep`])).stdout, before, c.name);
      // and the verdict is root's: the same exit code
      assert.equal(r.exitCode, c.code, `${c.name}: ${r.stderr}`);
      // a refused pull leaves no snapshot in progress behind
      if (r.exitCode !== 0) assert.equal((await h.exec(['sh', '-c', `ls -A ${STORE}/snapshots/work 2>/dev/null | wc -l`])).stdout.trim(), '0', c.name);
    }
    console.log(`# hostile pulls as tuser (exit code against the root path's):\n${results.map((l) => `#   ${l}`).join('\n')}`);
    // 'lower layer d -> canary, upper layer writes d/pwned' is harmless: its pwned is a file of its own snapshot
    assert.equal((await h.exec(['sh', '-c', `find / -xdev -path ${STORE}/snapshots -prune -o -name pwned -print 2>/dev/null`])).stdout.trim(), '');
  });
});
