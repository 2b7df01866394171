/**
 * @module manager
 * The application layer between the CLI (or the planned Docker-compatible API) and the
 * modules: a Manager per caller picks the runtime by name (root → nspawn, user → bwrap),
 * opens the store and unpacker that runtime needs, and offers the verbs as data in, data out.
 */
export { Manager, type ManagerOptions, type PullRequest, type RunRequest, type StatusView } from './manager.ts';
export { chooseRuntime, runtimesFor, type RuntimeChoiceInput } from './choose.ts';
export { BACKENDS, BACKEND_NAMES, loadRuntimes, type Backend } from './backends.ts';
export { networkFromFlags, publishedPorts, specFromFlags, type NetworkDefaults, type RunRequestFlags } from './flags.ts';
export { openServices, registryFor, registriesConfPaths, storeRootFor, type RegistryFlags, type ServiceOptions, type Services } from './services.ts';
