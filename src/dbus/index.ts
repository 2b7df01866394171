/**
 * @module dbus
 * berth's D-Bus client: one bus adapter (connection.ts: socket, SASL EXTERNAL, calls,
 * signals) over a small pure implementation of the wire format (wire.ts, message.ts), and
 * typed proxies for systemd's Manager (systemd1.ts) and machined (machine1.ts).
 *
 * Lifecycle: `systemd()` / `machined()` open the process's one system-bus connection on
 * first use and share it; the connection keeps the process alive only while a call or a
 * job wait is outstanding, so commands need not close it.
 */
import { systemBus } from './connection.ts';
import { MachineManager } from './machine1.ts';
import { SystemdManager } from './systemd1.ts';

export { connectBus, codeForDBusError, dbusErrorName, socketPaths, systemBus, systemBusAddress, type Bus, type CallRequest, type Signal } from './connection.ts';
export { SystemdManager, unitObjectPath, SERVICE_IFACE, UNIT_IFACE, type JobMode, type JobResult, type UnitListEntry } from './systemd1.ts';
export { MachineManager, formatIPv6, type MachineAddress, type MachineInfo, type MachineListEntry } from './machine1.ts';

let sd: Promise<SystemdManager> | undefined;
let md: Promise<MachineManager> | undefined;

export function systemd(): Promise<SystemdManager> {
  sd ??= systemBus().then((b) => new SystemdManager(b));
  sd.catch(() => {
    sd = undefined;
  });
  return sd;
}

export function machined(): Promise<MachineManager> {
  md ??= systemBus().then((b) => new MachineManager(b));
  md.catch(() => {
    md = undefined;
  });
  return md;
}
