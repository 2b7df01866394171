/**
 * @module network/render
 * Pure translation of zones and attachments into what the kernel tools and dnsmasq read:
 * `ip -batch` files, `nft -f` rulesets, the zone's systemd unit, a machine's resolv.conf
 * and hosts file, and the RuntimeNetwork a runtime executes. No I/O.
 *
 * Why these mechanisms (see the README's "Networking" section for figures):
 * - A machine's network namespace is made by `ip netns add` before the runtime starts; the
 *   runtime is started through `berth-helper netns-exec`, which enters it, sets its
 *   address, route and sysctls over rtnetlink and execs the runtime: all in place before
 *   the payload's first instruction, with no DHCP client in the image.
 * - The namespace is owned by the host's user namespace, so container root cannot change its
 *   addresses or routes; `ip_unprivileged_port_start=0` inside lets it still bind port 80.
 * - Published ports are DNAT rules in a table per machine (`berth-m-NAME`): created
 *   atomically by one `nft -f`, removed atomically by deleting the table, never touching
 *   another table. The output-chain DNAT plus `route_localnet` on the zone's bridge and a
 *   masquerade of 127.0.0.0/8 make them answer on the host's own 127.0.0.1 (nspawn's --port
 *   never did: systemd#6106). route_localnet would let a machine send to or from 127/8 on
 *   the bridge; the zone's `guard` chain drops exactly that.
 * - Each `nft -f` file starts with "table …{}; delete table …", so it is idempotent: a
 *   restart after a crash replaces stale rules instead of failing or doubling them.
 */
import { quoteExecArg } from '../unit/index.ts';
import { UnitFile } from '../unit/index.ts';
import { formatIPv4, parseIPv4, parseSubnet } from './ipv4.ts';
import { CONTAINER_IF, bridgeName, machineNetDir, machineTable, netnsName, netnsPath, zoneDir, zoneHostsDir, zoneTable, zoneUnit } from './names.ts';
import type { PortMapping } from './ports.ts';
import type { Attachment, RuntimeNetwork, Zone } from './types.ts';

/** Files of a machine's attachment directory, by name. */
export type FileSet = Record<string, string>;

function prefixLen(z: Zone): number {
  return parseSubnet(z.subnet, `zone ${z.name} subnet`).prefix;
}

/** `ip -batch` lines run in the host namespace: the namespace and the veth into the bridge. */
export function hostIpBatch(a: Attachment): string {
  const ns = netnsName(a.machine);
  return [
    `netns add ${ns}`,
    `link add ${a.hostIf} type veth peer name ${CONTAINER_IF} netns ${ns}`,
    `link set ${a.hostIf} master ${a.zone.bridge}`,
    `link set ${a.hostIf} up`,
    '',
  ].join('\n');
}

/**
 * The machine's MAC, derived from its address (locally administered, like Docker's
 * 02:42:<ip>): an address handed out again, or kept across a restart, comes with the same
 * MAC, so neighbour caches on the host and in other machines stay right. With a random MAC
 * they would point at the old one for up to a minute (reachable_time, then probes), which
 * loses UDP datagrams and delays connections to a machine that reuses a freed address.
 */
export function macFor(address: string): string {
  const n = parseIPv4(address);
  return ['02', 'b3', n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((x) => (typeof x === 'string' ? x : x.toString(16).padStart(2, '0'))).join(':');
}

/**
 * The namespace's own configuration, read by `berth-helper netns-exec` (native/netns.c)
 * after it entered the namespace and before it execs the runtime: the link, its MAC,
 * address and prefix, the default route. One helper call does over rtnetlink what an
 * `ip -n NETNS -batch` file, an `nsenter … sysctl` and nsenter itself did (3 processes).
 */
export function netnsConfig(a: Attachment): string {
  return [
    `# Network namespace of machine ${a.machine} (zone ${a.zone.name}), for berth-helper netns-exec.`,
    `link ${CONTAINER_IF}`,
    `mac ${macFor(a.address)}`,
    `address ${a.address}/${prefixLen(a.zone)}`,
    `gateway ${a.zone.gateway}`,
    '',
  ].join('\n');
}

/** `ip -force -batch`: removes the veth and the namespace (each line on its own). */
export function downIpBatch(a: Attachment): string {
  return [`link delete ${a.hostIf}`, `netns delete ${netnsName(a.machine)}`, ''].join('\n');
}

function resetTable(name: string): string[] {
  return [`table ip ${name} {}`, `delete table ip ${name}`];
}

function match(m: PortMapping): string {
  return m.hostIp === undefined ? 'fib daddr type local' : `ip daddr ${m.hostIp}`;
}

/** The machine's published ports: DNAT for traffic from outside and from the host itself. */
export function machinePortsNft(a: Attachment): string {
  const t = machineTable(a.machine);
  const rule = (m: PortMapping): string => `    ${match(m)} ${m.proto} dport ${m.hostPort} dnat to ${a.address}:${m.containerPort}`;
  const fromOutside = a.ports.filter((m) => m.hostIp === undefined || parseIPv4(m.hostIp) >>> 24 !== 127);
  return [
    `# Published ports of machine ${a.machine} (zone ${a.zone.name}); loaded before it starts, deleted when it stops.`,
    ...resetTable(t),
    `table ip ${t} {`,
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...fromOutside.map(rule),
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    ...a.ports.map(rule),
    '  }',
    '}',
    '',
  ].join('\n');
}

export function dropTableNft(table: string): string {
  return [...resetTable(table), ''].join('\n');
}

/** The zone's own rules: loopback guard, isolation from other zones, NAT. */
export function zoneNft(z: Zone): string {
  const t = zoneTable(z.name);
  const br = z.bridge;
  return [
    `# Zone ${z.name} (${z.subnet} on ${br}), written by berth.`,
    ...resetTable(t),
    `table ip ${t} {`,
    '  chain guard {',
    '    type filter hook prerouting priority raw; policy accept;',
    '    # route_localnet is on for the bridge: nothing from a machine may use 127.0.0.0/8',
    `    iifname "${br}" ip saddr 127.0.0.0/8 drop`,
    `    iifname "${br}" ip daddr 127.0.0.0/8 drop`,
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    '    # the zone\'s resolver answers its own machines only (names do not cross zones)',
    `    iifname != "${br}" ip daddr ${z.gateway} meta l4proto { tcp, udp } th dport 53 drop`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    # other zones are unreachable; published ports (DNAT) stay reachable from everywhere',
    `    iifname "${br}" oifname "bz-*" oifname != "${br}" ct status != dnat drop`,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    oifname "${br}" ip saddr 127.0.0.0/8 masquerade`,
    `    oifname "${br}" ip saddr ${z.subnet} ct status dnat masquerade`,
    `    oifname != "${br}" ip saddr ${z.subnet} masquerade`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** One Exec*= line: plain words stay plain, anything else is quoted (no specifiers, no $). */
export function execLine(argv: readonly string[], ignoreFailure = false): string {
  const words = argv.map((w) => (/^[A-Za-z0-9_@+=:,./-]+$/.test(w) ? w : quoteExecArg(w)));
  return `${ignoreFailure ? '-' : ''}${words.join(' ')}`;
}

export function zonePidFile(zone: string): string {
  return `/run/berth-zone-${zone}.pid`;
}

export function dnsmasqArgv(z: Zone): string[] {
  return [
    'dnsmasq', '--conf-file=/dev/null', `--pid-file=${zonePidFile(z.name)}`,
    '--bind-interfaces', `--interface=${z.bridge}`, '--except-interface=lo', `--listen-address=${z.gateway}`,
    '--no-hosts', `--hostsdir=${zoneHostsDir(z.name)}`, '--domain-needed', '--no-negcache',
  ];
}

/** Commands that bring the zone up (bridge, address, sysctls, rules); the resolver comes after. */
export function zoneSetup(z: Zone): Array<{ argv: string[]; ignoreFailure?: boolean }> {
  return [
    { argv: ['ip', 'link', 'add', z.bridge, 'type', 'bridge'], ignoreFailure: true },
    // A fixed MAC: a bridge otherwise takes the lowest MAC of its ports, so its MAC (the
    // machines' gateway) would change as machines come and go, and their ARP caches go stale.
    { argv: ['ip', 'link', 'set', z.bridge, 'address', macFor(z.gateway)] },
    { argv: ['ip', 'link', 'set', z.bridge, 'up'] },
    { argv: ['ip', 'addr', 'replace', `${z.gateway}/${prefixLen(z)}`, 'dev', z.bridge] },
    { argv: ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', `net.ipv4.conf.${z.bridge}.route_localnet=1`] },
    { argv: ['nft', '-f', `${zoneDir(z.name)}/zone.nft`] },
  ];
}

/** berth-zone-ZONE.service: the zone exists while it runs; machines Require= it. */
export function zoneUnitFile(z: Zone, path?: string): UnitFile {
  const u = new UnitFile(path);
  u.comment(`berth network zone ${z.name}, generated from /etc/berth/zones/${z.name}.zone (\`berth zone inspect ${z.name}\`).`);
  u.set('Unit', 'Description', `berth network zone ${z.name} (${z.bridge}, ${z.subnet})`);
  u.set('Unit', 'Before', 'machines.target');
  u.set('Service', 'Type', 'forking');
  u.set('Service', 'PIDFile', zonePidFile(z.name));
  for (const c of zoneSetup(z)) u.add('Service', 'ExecStartPre', execLine(c.argv, c.ignoreFailure));
  u.set('Service', 'ExecStart', execLine(dnsmasqArgv(z)));
  u.set('Service', 'Restart', 'on-failure');
  return u;
}

/** A zone from its name and subnet (bridge and gateway derived). */
export function zoneOf(name: string, subnet: string): Zone {
  const s = parseSubnet(subnet, `zone ${name} subnet`);
  return { name, subnet, gateway: formatIPv4(s.base + 1), bridge: bridgeName(name) };
}

/** Upstream servers from the host's resolv.conf that a machine can reach (not loopback). */
export function hostUpstreams(hostResolvConf: string): { servers: string[]; search: string[] } {
  const servers: string[] = [];
  const search: string[] = [];
  for (const line of hostResolvConf.split('\n')) {
    const [k, ...v] = line.trim().split(/\s+/);
    if (k === 'nameserver' && v[0] && /^\d+\.\d+\.\d+\.\d+$/.test(v[0]) && !v[0].startsWith('127.')) servers.push(v[0]);
    if ((k === 'search' || k === 'domain') && v.length) search.splice(0, search.length, ...v.filter((d) => /^[A-Za-z0-9.-]+$/.test(d)));
  }
  return { servers, search };
}

/** The machine's /etc/resolv.conf: the zone's resolver first, then the host's upstreams (or --dns). */
export function resolvConf(a: Attachment, hostResolvConf: string): string {
  const up = hostUpstreams(hostResolvConf);
  const servers = a.dns.length > 0 ? a.dns : [a.zone.gateway, ...up.servers.filter((s) => s !== a.zone.gateway)].slice(0, 3);
  const lines = [`# Written by berth for machine ${a.machine} (zone ${a.zone.name}).`, ...servers.map((s) => `nameserver ${s}`)];
  if (up.search.length) lines.push(`search ${up.search.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** The machine's /etc/hosts: localhost, its own name and address, --add-host entries. */
export function hostsFile(a: Attachment, hostname: string): string {
  const own = [...new Set([hostname, a.machine])].join(' ');
  return [
    `# Written by berth for machine ${a.machine}.`,
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    `${a.address}\t${own}`,
    ...a.addHosts.map((h) => `${h.ip}\t${h.name}`),
    '',
  ].join('\n');
}

/** The zone resolver's entry for the machine (dnsmasq --hostsdir): its name and aliases. */
export function zoneHostsEntry(a: Attachment): string {
  return `${a.address} ${[...new Set([a.machine, ...a.aliases])].join(' ')}\n`;
}

/** Everything in /etc/berth/machines/NAME/ except network.conf. */
export function machineFiles(a: Attachment, hostResolvConf: string, hostname: string): FileSet {
  const f: FileSet = {
    'up.ip': hostIpBatch(a),
    'netns.conf': netnsConfig(a),
    'down.ip': downIpBatch(a),
    'resolv.conf': resolvConf(a, hostResolvConf),
    hosts: hostsFile(a, hostname),
  };
  if (a.ports.length > 0) {
    f['ports.nft'] = machinePortsNft(a);
    f['ports-down.nft'] = dropTableNft(machineTable(a.machine));
  }
  return f;
}

/** What a runtime executes for the attachment (files from machineFiles, in its directory). */
export function runtimeNetwork(a: Attachment, helper: string): RuntimeNetwork {
  return planRuntimeNetwork(a.machine, a.zone.name, a.ports.length > 0, helper);
}

/**
 * The same, known before any allocation (it depends only on the names and on whether
 * ports are published), so a runtime's files can be translated before anything is written.
 */
export function planRuntimeNetwork(machine: string, zone: string, hasPorts: boolean, helper: string): RuntimeNetwork {
  const dir = machineNetDir(machine);
  const ns = netnsPath(machine);
  // Per start: one `ip -batch` (namespace, veth, bridge port), one `nft -f` when ports
  // are published, and the runtime itself started through `berth-helper netns-exec`,
  // which configures the namespace from netns.conf and execs it (no process of its own).
  const setup: string[][] = [['ip', '-batch', `${dir}/up.ip`]];
  const teardown: string[][] = [];
  if (hasPorts) {
    setup.push(['nft', '-f', `${dir}/ports.nft`]);
    teardown.push(['nft', '-f', `${dir}/ports-down.nft`]);
  }
  teardown.push(['ip', '-force', '-batch', `${dir}/down.ip`]);
  return {
    netnsPath: ns,
    enter: [helper, 'netns-exec', ns, `${dir}/netns.conf`, '--'],
    setup,
    teardown,
    files: [{ source: `${dir}/resolv.conf`, target: '/etc/resolv.conf' }, { source: `${dir}/hosts`, target: '/etc/hosts' }],
    requires: [zoneUnit(zone)],
  };
}
