/**
 * @module network/types
 * The neutral description the network module works with. A machine's *request* (what the
 * user asked: mode, zone, fixed address, ports, aliases, resolver settings) becomes an
 * *attachment* once berth allocated it (address, host ports decided), and an attachment
 * becomes a *RuntimeNetwork*: what any runtime needs to run the machine inside it — the
 * namespace to enter, commands to run before start and after stop, files to show inside.
 * No runtime words here: nspawn's translator and a later pasta backend both consume it.
 *
 * The request type is structurally the same as container/spec's `network` field (the
 * layering keeps the two modules apart).
 */
import type { PortMapping, PortRequest } from './ports.ts';

export interface HostEntry {
  name: string;
  ip: string;
}

export interface NetworkRequest {
  mode: 'host' | 'private' | 'link' | 'zone';
  zone?: string;
  ip?: string;
  publish?: PortRequest[];
  aliases?: string[];
  dns?: string[];
  addHosts?: HostEntry[];
}

export interface Zone {
  name: string;
  /** "10.199.0.0/24" */
  subnet: string;
  /** "10.199.0.1": the bridge's address, the machines' router and resolver. */
  gateway: string;
  bridge: string;
}

export interface Attachment {
  machine: string;
  zone: Zone;
  address: string;
  /** Host end of the veth. */
  hostIf: string;
  netns: string;
  ports: PortMapping[];
  aliases: string[];
  /** --dns servers; empty: the zone's resolver, then the host's upstream servers. */
  dns: string[];
  addHosts: HostEntry[];
}

export interface RuntimeNetwork {
  /** A network namespace the runtime enters (the container shares it, no netns of its own). */
  netnsPath: string;
  /**
   * argv prefix the runtime's own command is appended to: it enters netnsPath, finishes
   * the namespace's configuration and execs the rest (no process of its own).
   */
  enter: string[];
  /** Run in order before the payload starts; any failure fails the start. */
  setup: string[][];
  /** Run after the payload stopped (clean stop, crash or SIGKILL); failures are ignored. */
  teardown: string[][];
  /** Host files to show read-only inside the container. */
  files: Array<{ source: string; target: string }>;
  /** Units that must be running first (the zone). */
  requires: string[];
}
