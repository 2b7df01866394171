/**
 * @module machine
 * The machine lifecycle manager: create, start/stop/kill/rm/rename, enable/disable,
 * views (ls/ps/inspect), exec and logs. Everything goes through systemd (see
 * runtime/nspawn); berth keeps no private state.
 */
export { createMachine, machineExists, machinesLock, type CreatedMachine, type MachineContext } from './create.ts';
export {
  disableMachine, enableMachine, isActive, killMachine, removeMachine, renameMachine, restartMachine, startMachine, stopMachine,
} from './lifecycle.ts';
export { imagesInUse, inspectMachine, listMachineNames, listMachineSummaries, networkOf, readSettings, type ImageUse, type MachineSummary } from './query.ts';
export { formatBytes, formatStatus, machineStatus, parseAddresses, type MachineStatus } from './status.ts';
export { execInMachine, streamLogs, type ExecOptions, type LogsOptions } from './access.ts';
export { NspawnRuntime, createNspawnRuntime, type NspawnExtras, type NspawnSummary } from './runtime.ts';
