/**
 * @module reference
 * Public surface of image-reference parsing (the only file other modules import from).
 */
export {
  parseReference,
  withTarget,
  registryApiHost,
  fetchTarget,
  DEFAULT_REGISTRY,
  DEFAULT_TAG,
  DOCKER_HUB_API_HOST,
} from './reference.ts';
export type { ImageReference } from './reference.ts';
