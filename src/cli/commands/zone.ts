/**
 * @module cli/commands/zone
 * `berth zone create|ls|inspect|rm` (and `berth network …`, the same commands under
 * Docker's name), and `berth port NAME`.
 */
import { formatTable } from '../table.ts';
import { BerthError } from '../../base/errors.ts';
import {
  createZone, listAttachments, listZones, machinesInZone, portLines, readZone, removeZone, validateZoneName, zoneState,
} from '../../network/index.ts';
import type { GlobalOptions } from '../program.ts';

/** The caller's runtime must have zones (root's nspawn); a user's gets a clear refusal. */
async function zonesOnly(g: GlobalOptions): Promise<void> {
  const { BACKENDS, requireZones } = await import('../../manager/backends.ts');
  const { chooseRuntime } = await import('../../manager/choose.ts');
  requireZones(chooseRuntime({ uid: process.getuid?.() ?? 0, flag: g.runtime, env: process.env.BERTH_RUNTIME, known: Object.keys(BACKENDS) }));
}

export async function zoneCreateCommand(name: string, f: { subnet?: string }, g: GlobalOptions): Promise<void> {
  await zonesOnly(g);
  const z = await createZone(name, { subnet: f.subnet });
  process.stdout.write(`${z.name}\n`);
}

export async function zoneLsCommand(f: { json?: boolean; quiet?: boolean }, g: GlobalOptions): Promise<void> {
  await zonesOnly(g);
  const zones = await listZones();
  const atts = await listAttachments();
  const rows = await Promise.all(zones.map(async (z) => {
    const st = await zoneState(z);
    return { name: z.name, subnet: z.subnet, gateway: z.gateway, bridge: z.bridge, unit: st.unit, state: st.state, machines: atts.filter((a) => a.zone.name === z.name).map((a) => a.machine) };
  }));
  if (f.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else if (f.quiet) process.stdout.write(rows.map((r) => `${r.name}\n`).join(''));
  else process.stdout.write(formatTable(['ZONE', 'SUBNET', 'GATEWAY', 'BRIDGE', 'STATE', 'MACHINES'], rows.map((r) => [r.name, r.subnet, r.gateway, r.bridge, r.state, String(r.machines.length)])));
}

export async function zoneInspectCommand(names: string[], _f: unknown, g: GlobalOptions): Promise<void> {
  await zonesOnly(g);
  const out = [];
  for (const n of names) {
    const z = await readZone(validateZoneName(n));
    const st = await zoneState(z);
    const atts = (await listAttachments()).filter((a) => a.zone.name === z.name);
    out.push({
      Name: z.name, Subnet: z.subnet, Gateway: z.gateway, Bridge: z.bridge, Unit: st.unit, State: st.state, BridgeUp: st.bridgeUp,
      Resolver: z.gateway, Definition: `/etc/berth/zones/${z.name}.zone`,
      Machines: atts.map((a) => ({ Name: a.machine, Address: a.address, Aliases: a.aliases, Veth: a.hostIf })),
    });
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}

export async function zoneRmCommand(names: string[], _f: unknown, g: GlobalOptions): Promise<void> {
  await zonesOnly(g);
  for (const n of names) {
    await removeZone(validateZoneName(n), machinesInZone);
    process.stdout.write(`${n}\n`);
  }
}

export async function portCommand(name: string, privatePort: string | undefined, f: { json?: boolean }, g: GlobalOptions): Promise<void> {
  const { openManager } = await import('../manager.ts');
  const m = await openManager(g);
  let ports = await m.ports(name);
  if (privatePort !== undefined) {
    const [num, proto = 'tcp'] = privatePort.split('/');
    ports = ports.filter((x) => String(x.containerPort) === num && x.protocol === proto);
    if (ports.length === 0) throw new BerthError('NOT_FOUND', `no public port ${privatePort} published for ${name}`);
  }
  const shown = ports.map((p) => ({ hostIp: p.hostIp ?? '0.0.0.0', hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol }));
  if (f.json) process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
  else process.stdout.write(portLines({ mode: 'zone', ports: shown, aliases: [], dns: [] }).map((l) => `${l}\n`).join(''));
}
