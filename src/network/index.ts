/**
 * @module network
 * berth's networking: zones (a bridge, NAT and isolation rules, a resolver), machines
 * attached to them (an address, a network namespace, published ports that also answer on
 * the host's 127.0.0.1), and the neutral RuntimeNetwork a runtime executes. Pure
 * translators (render, record, ports, ipv4) are separate from the thin I/O shells
 * (zones, attach). See names.ts for every name and path it uses.
 */
export type { Attachment, HostEntry, NetworkRequest, RuntimeNetwork, Zone } from './types.ts';
export type { PortMapping, PortRequest, Proto } from './ports.ts';
export { exposedToRequests, formatMapping, parsePublish } from './ports.ts';
export { parseAddHost, validateDnsName } from './record.ts';
export { DEFAULT_ZONE, RESERVED_NETWORK_NAMES, validateZoneName, zoneUnit } from './names.ts';
export { createZone, ensureZoneRunning, listZones, readZone, removeZone, zoneState, type ZoneState } from './zones.ts';
export {
  attachMachine, checkPortsFree, detachMachine, listAttachments, machinesInZone, readAttachment, renameAttachment, runtimeNetworkFor, setup,
  teardown,
} from './attach.ts';
export { isIPv4 } from './ipv4.ts';
export { planRuntimeNetwork } from './render.ts';

import type { Attachment, NetworkRequest, RuntimeNetwork } from './types.ts';
import { DEFAULT_ZONE as DZ } from './names.ts';
import { helperPath } from '../native/index.ts';
import { planRuntimeNetwork as plan, runtimeNetwork as render } from './render.ts';

/** The RuntimeNetwork a request will need, before allocation; undefined without a zone. */
export function networkPlan(machine: string, req: NetworkRequest): RuntimeNetwork | undefined {
  return req.mode === 'zone' ? plan(machine, req.zone ?? DZ, (req.publish ?? []).length > 0, helperPath()) : undefined;
}

/** What a runtime executes for the attachment, with this installation's berth-helper. */
export function runtimeNetwork(a: Attachment): RuntimeNetwork {
  return render(a, helperPath());
}
export { attachmentView, portLines, viewLine, type NetworkView } from './view.ts';
