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
    // not even by asking the other zone's resolver directly
    const ask = await berth(['exec', 'stranger', 'sh', '-c', 'timeout 5 nslookup db 10.199.0.1'], { reject: false });
    assert.doesNotMatch(ask.stdout, /Address: 10\.199\.0\./, ask.stdout);
    const ls = JSON.parse((await berth(['network', 'ls', '--json'])).stdout) as Array<{ name: string; machines: string[] }>;
    assert.deepEqual(ls.map((z) => [z.name, z.machines]), [['berth', ['db', 'web']], ['other', ['stranger']]]);
    const rm = await berth(['zone', 'rm', 'other'], { reject: false });
    assert.equal(rm.exitCode, 17, rm.stderr);
    assert.match(rm.stderr, /in use by stranger/);
  });

  test('-p 127.0.0.1:H:C answers on loopback only; resolv.conf and hosts from berth', async () => {
    await berth(['run', '-d', '--name', 'lo', '-p', '127.0.0.1:8081:80', '--add-host', 'gw:host-gateway', '--add-host', 'x.example:192.0.2.99', 'busybox', ...httpd('hello-lo')]);
    await sh(waitFor('curl -sf -m 1 http://127.0.0.1:8081/ >/dev/null'));
    assert.equal((await sh('curl -s -m 3 -o /dev/null -w "%{http_code}" http://192.0.2.10:8081/', { reject: false })).stdout, '000');
    const resolv = (await berth(['exec', 'lo', 'cat', '/etc/resolv.conf'])).stdout;
    assert.match(resolv, /^nameserver 10\.199\.0\.1$/m);
    const hosts = (await berth(['exec', 'lo', 'cat', '/etc/hosts'])).stdout;
    assert.match(hosts, /^10\.199\.0\.1\tgw$/m);
    assert.match(hosts, /^192\.0\.2\.99\tx\.example$/m);
    assert.match(hosts, /^10\.199\.0\.\d+\tlo$/m);
    await berth(['rm', '-f', 'lo']);
  });

  test('a UDP echo through a published UDP port', async () => {
    // busybox has no UDP server: a 10-line static echo server, built in the test host.
    await sh(`mkdir -p /srv/udp && cat > /srv/udp/echo.c <<'C'
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
  if (argc < 2 || bind(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
  for (char b[2048];;) {
    struct sockaddr_in p; socklen_t l = sizeof p;
    ssize_t n = recvfrom(s, b, sizeof b, 0, (struct sockaddr *)&p, &l);
    if (n > 0) sendto(s, b, n, 0, (struct sockaddr *)&p, l);
  }
}
C
gcc -static -O2 -o /srv/udp/echo /srv/udp/echo.c`);
    await berth(['run', '-d', '--name', 'udp', '-p', '5353:53/udp', '-v', '/srv/udp:/opt/udp:ro', 'busybox', '/opt/udp/echo', '53']);
    const py = (host: string) => `python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
for i in range(30):
    s.sendto(b'ping-udp', ('${host}', 5353))
    try: print(s.recv(100).decode()); sys.exit(0)
    except socket.timeout: pass
sys.exit(1)"`;
    assert.equal((await sh(py('127.0.0.1'))).stdout.trim(), 'ping-udp');
    assert.equal((await sh(py('192.0.2.10'))).stdout.trim(), 'ping-udp');
    assert.equal((await berth(['port', 'udp'])).stdout, '53/udp -> 0.0.0.0:5353\n');
    await berth(['rm', '-f', 'udp']);
  });

  test('a taken host port is refused before start, and nothing is left behind', async () => {
    const before = await sh('ls /etc/systemd/nspawn /etc/berth/machines /etc/berth/zones/berth/hosts.d; nft list tables');
    const byMachine = await berth(['run', '-d', '--name', 'web2', '-p', '8080:80', 'busybox', ...httpd('x')], { reject: false });
    assert.equal(byMachine.exitCode, 5, byMachine.stderr);
    assert.match(byMachine.stderr, /host port 0\.0\.0\.0:8080\/tcp is already in use by machine web/);
    await sh('systemd-run --unit=hostlistener -p Type=exec busybox nc -ll -p 9090 -e /bin/cat');
    await sh(waitFor("grep -q ':2382 00' /proc/net/tcp /proc/net/tcp6"));
    const byHost = await berth(['run', '-d', '--name', 'web3', '-p', '9090:80', 'busybox', ...httpd('x')], { reject: false });
    assert.equal(byHost.exitCode, 5, byHost.stderr);
    assert.match(byHost.stderr, /host port 0\.0\.0\.0:9090\/tcp is already in use by a process on this host/);
    const after = await sh('ls /etc/systemd/nspawn /etc/berth/machines /etc/berth/zones/berth/hosts.d; nft list tables');
    assert.equal(after.stdout, before.stdout, 'no file, record or rule of web2/web3');
    assert.equal((await sh('systemctl list-units --all --no-legend "systemd-nspawn@web[23].service" | wc -l')).stdout.trim(), '0');
    // A host process that binds after create is caught at start, before any rule exists.
    await berth(['create', '--name', 'late', '-p', '9191:80', 'busybox', ...httpd('x')]);
    await sh('systemd-run --unit=hostlistener2 -p Type=exec busybox nc -ll -p 9191 -e /bin/cat');
    await sh(waitFor("grep -q ':23E7 00' /proc/net/tcp /proc/net/tcp6"));
    const late = await berth(['start', 'late'], { reject: false });
    assert.equal(late.exitCode, 5, late.stderr);
    assert.equal(await kernelState().then((k) => k.includes('late')), false);
    await sh('systemctl stop hostlistener hostlistener2');
    await berth(['rm', '-f', 'late']);
  });

  test('bad network flags: clear errors, nothing written', async () => {
    const before = (await sh('ls -R /etc/berth /etc/systemd/nspawn')).stdout;
    const cases: Array<[string[], number, RegExp]> = [
      [['--network', 'a;b'], 2, /--network "a;b" is not valid/],
      [['--network', 'nosuch'], 4, /no such network zone: nosuch/],
      [['--ip', '10.199.0.1'], 2, /not a machine address in zone berth/],
      [['--ip', '10.200.0.9'], 2, /not a machine address/],
      [['--ip', '10.199.0.300'], 2, /not an IPv4 address/],
      [['-p', '8080:80:90:1'], 11, /IPv6/],
      [['-p', '99999:80'], 2, /out of range/],
      [['--network', 'host', '-p', '8080:80'], 2, /needs a network zone/],
      [['--network-alias', 'a b'], 2, /not a valid host name/],
      [['--dns', 'resolver'], 2, /--dns "resolver" is not an IPv4 address/],
      [['--add-host', 'x'], 2, /expected NAME:IP/],
      [['-p', '8085:80', '-p', '8085:81'], 2, /published twice/],
    ];
    for (const [flags, code, re] of cases) {
      const r = await berth(['create', '--name', 'badnet', ...flags, 'busybox', 'true'], { reject: false });
      assert.equal(r.exitCode, code, `${flags.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, flags.join(' '));
    }
    const webIp = JSON.parse((await berth(['status', '--json', 'web'])).stdout).network.address.split('/')[0];
    const taken = await berth(['create', '--name', 'badnet', '--ip', webIp, 'busybox', 'true'], { reject: false });
    assert.equal(taken.exitCode, 5, taken.stderr);
    assert.match(taken.stderr, /already used by machine web/);
    assert.equal((await sh('ls -R /etc/berth /etc/systemd/nspawn')).stdout, before, 'nothing written by a refused create');
  });

  test('a restart keeps the address; stop and SIGKILL of nspawn leave no rule, link or namespace', async () => {
    const addr = async () => (JSON.parse((await berth(['status', '--json', 'web'])).stdout) as { network: { address: string } }).network.address;
    const a1 = await addr();
    assert.match(await kernelState(), /berth-m-web/);
    await berth(['restart', 'web']);
    assert.equal(await addr(), a1);
    await sh(waitFor('curl -sf -m 1 http://127.0.0.1:8080/ >/dev/null'));
    await berth(['stop', 'web']);
    assert.doesNotMatch(await kernelState(), /web/, 'after stop');
    assert.notEqual((await sh('curl -s -m 2 http://127.0.0.1:8080/', { reject: false })).exitCode, 0);
    await berth(['start', 'web']);
    assert.equal(await addr(), a1);
    await sh(waitFor('curl -sf -m 1 http://127.0.0.1:8080/ >/dev/null'));
    await sh('systemctl kill --kill-who=main -s SIGKILL systemd-nspawn@web');
    // inactive or failed, i.e. after ExecStopPost= ran
    await sh(waitFor('systemctl show -p ActiveState --value systemd-nspawn@web | grep -qE "^(inactive|failed)$"'));
    const k = await kernelState();
    assert.doesNotMatch(k, /web/, `after SIGKILL of nspawn: ${k}`);
    assert.doesNotMatch((await sh('nft list ruleset')).stdout, /berth-m-web/);
    await berth(['start', 'web']);
    assert.equal(await addr(), a1, 'same address after a crash');
  });

  test('attached `berth run` gets the same networking as -d, and leaves nothing behind', async () => {
    const r = await berth(['run', '--rm', '--name', 'fg', '-p', '8090:80', 'busybox', 'sh', '-c',
      'ip -4 -o addr show eth0; timeout 3 wget -q -O- http://web/; httpd -p 80 -h /; timeout 3 wget -q -O- http://127.0.0.1:80/nope 2>&1; echo done']);
    assert.match(r.stdout, /eth0\s+inet 10\.199\.0\.\d+\/24/);
    assert.match(r.stdout, /hello-web/);
    assert.doesNotMatch(await kernelState(), /fg/);
    assert.equal((await sh('ls /etc/berth/machines/fg 2>&1 || true')).stdout.includes('No such file'), true);
  });

  test('rename keeps the address and the published port', async () => {
    await berth(['create', '--name', 'ren1', '-p', '8095:80', 'busybox', ...httpd('hello-ren')]);
    const before = (await sh("grep '^Address=' /etc/berth/machines/ren1/network.conf")).stdout;
    await berth(['rename', 'ren1', 'ren2']);
    assert.equal((await sh("grep '^Address=' /etc/berth/machines/ren2/network.conf")).stdout, before);
    assert.equal((await sh('ls /etc/berth/machines/ren1 /etc/berth/zones/berth/hosts.d/ren1 2>&1 | grep -c "No such"')).stdout.trim(), '2');
    // the zone's start drop-in mounts the renamed root; no ExecStartPre= mount is left
    const units = (await sh('cd /etc/systemd/system/systemd-nspawn@ren2.service.d && cat 10-berth-rootfs.conf 60-berth-network.conf')).stdout;
    assert.match(units, /^ExecStart=\S+ netns-exec \S+ \S+ -- \S+ nspawn-start \/run\/berth\/seccomp\/ren2\.filter --mount --target \/var\/lib\/machines\/ren2 --upper \/var\/lib\/machines\/\.berth-ren2\/upper /m);
    assert.doesNotMatch(units, /ren1|^ExecStartPre=\S+ mount /m);
    await berth(['start', 'ren2']);
    await sh(waitFor('curl -sf -m 1 http://127.0.0.1:8095/ | grep -q hello-ren'));
    assert.equal((await berth(['exec', 'web', 'sh', '-c', 'timeout 3 wget -q -O- http://ren2/'])).stdout.trim(), 'hello-ren');
    await berth(['rm', '-f', 'ren2']);
    assert.doesNotMatch(await kernelState(), /ren/);
  });

  test('route_localnet is not a way in: a peer on the bridge cannot reach or spoof the host\'s 127.0.0.1', async () => {
    // A hostile "machine" with every capability (made by the test itself: a namespace with a
    // veth in the zone's bridge) routes 127.0.0.1 to the gateway instead of its own loopback.
    const portState = (await sh('systemd-run --unit=lo-only -p Type=exec busybox httpd -f -p 127.0.0.1:7777 -h /etc && sleep 0.5; echo started')).stdout;
    assert.match(portState, /started/);
    await sh(`ip netns add evil && ip link add be-evil type veth peer name eth0 netns evil && ip link set be-evil master bz-berth && ip link set be-evil up &&
      ip -n evil addr add 10.199.0.250/24 dev eth0 && ip -n evil link set eth0 up &&
      ip netns exec evil sysctl -q -w net.ipv4.conf.eth0.route_localnet=1 net.ipv4.conf.all.route_localnet=1 &&
      ip -n evil route del local 127.0.0.0/8 dev lo table local && ip -n evil route del local 127.0.0.1 dev lo table local 2>/dev/null;
      ip -n evil route add 127.0.0.1/32 via 10.199.0.1 dev eth0 onlink || true`);
    const route = (await sh('ip -n evil route get 127.0.0.1')).stdout;
    assert.match(route, /via 10\.199\.0\.1 dev eth0/, route);
    const r = await sh('nsenter --net=/run/netns/evil curl -s -m 3 -o /dev/null -w "%{http_code}" http://127.0.0.1:7777/passwd', { reject: false });
    assert.equal(r.stdout, '000', 'the host\'s loopback-only service must not answer a machine');
    // And the guard chain is what stops it: without it the same request gets through.
    await sh('nft flush chain ip berth-zone-berth guard');
    const open = await sh('nsenter --net=/run/netns/evil curl -s -m 3 -o /dev/null -w "%{http_code}" http://127.0.0.1:7777/passwd', { reject: false });
    await sh('nft -f /etc/berth/zones/berth/zone.nft');
    assert.equal(open.stdout, '200', 'the test must be able to see the hole it guards against');
    assert.match((await sh('nft list chain ip berth-zone-berth guard')).stdout, /ip daddr 127\.0\.0\.0\/8 drop/);
    await sh('systemctl stop lo-only; ip netns delete evil; ip link delete be-evil 2>/dev/null; true');
  });

  test('outbound traffic to a server in another namespace goes through NAT', async () => {
    // "outside": a namespace with no route back to the zone's subnet, so an answer can
    // only arrive when the zone's masquerade rewrote the source.
    await sh(`ip netns add outside && ip link add out0 type veth peer name out1 netns outside &&
      ip addr add 198.51.100.1/24 dev out0 && ip link set out0 up &&
      ip -n outside addr add 198.51.100.2/24 dev out1 && ip -n outside link set out1 up && ip -n outside link set lo up &&
      mkdir -p /srv/outside && echo hello-outside > /srv/outside/index.html`);
    await sh('systemd-run --unit=outside-httpd -p Type=exec -p NetworkNamespacePath=/run/netns/outside busybox httpd -f -p 80 -h /srv/outside');
    assert.doesNotMatch((await sh('ip -n outside route')).stdout, /10\.199/);
    const r = await berth(['exec', 'web', 'sh', '-c', 'for i in 1 2 3 4 5; do timeout 3 wget -q -O- http://198.51.100.2/ && exit 0; sleep 0.3; done; exit 1'], { reject: false });
    assert.equal(r.stdout.trim(), 'hello-outside', r.stderr);
    const ct = await sh('cat /proc/net/nf_conntrack 2>/dev/null | grep "dst=198.51.100.2" | head -1; true');
    if (ct.stdout) assert.match(ct.stdout, /src=198\.51\.100\.2 dst=198\.51\.100\.1/, 'the reply goes to the host address');
    await sh('systemctl stop outside-httpd; ip netns delete outside');
  });

  test('50 machines created at once get 50 different addresses; rm frees them', async (t) => {
    const t0 = Date.now();
    const r = await sh(`cd ${JSON.stringify(process.cwd())} && for i in $(seq 50); do ./bin/berth create --name many$i busybox true > /dev/null 2>/tmp/many$i.err & done; wait; cat /tmp/many*.err`);
    t.diagnostic(`50 concurrent creates: ${Date.now() - t0} ms`);
    assert.equal(r.stdout.trim(), '');
    const addrs = (await sh("grep -h '^Address=' /etc/berth/machines/many*/network.conf | sort")).stdout.trim().split('\n');
    assert.equal(addrs.length, 50);
    assert.equal(new Set(addrs).size, 50, 'no address given twice');
    const hosts = (await sh('cat /etc/berth/zones/berth/hosts.d/many* | wc -l')).stdout.trim();
    assert.equal(hosts, '50');
    await sh(`cd ${JSON.stringify(process.cwd())} && ./bin/berth rm $(seq -f 'many%g' 50) > /dev/null`);
    assert.equal((await sh('ls /etc/berth/machines | grep -c many; true')).stdout.trim(), '0');
    assert.equal((await sh('ls /etc/berth/zones/berth/hosts.d | grep -c many; true')).stdout.trim(), '0');
  });

  test('zone rm of an unused zone removes its unit, bridge and rules', async () => {
    await berth(['rm', '-f', 'stranger']);
    await berth(['zone', 'rm', 'other']);
    const left = await sh('ip -o link | grep -c bz-other; nft list tables | grep -c berth-zone-other; ls /etc/berth/zones; systemctl is-active berth-zone-other.service; true');
    assert.equal(left.stdout, '0\n0\nberth\nberth.zone\ninactive\n');
    assert.equal((await berth(['zone', 'inspect', 'other'], { reject: false })).exitCode, 4);
  });
});
