/**
 * @module image/archive
 * Moving images between the content store and files other tools read and write: OCI image
 * layout directories and docker-archive tarballs (`docker save`/`docker load`). Pure data
 * movement through the ContentStore: every blob coming in is verified by store.ingest.
 */
export { importOCILayout, readLayoutIndex } from './oci-import.ts';
export type { ImportOptions, ImportedImage } from './oci-import.ts';
export { importDockerArchive } from './docker-import.ts';
export { exportOCILayout } from './oci-export.ts';
export type { OCIExportOptions } from './oci-export.ts';
export { exportDockerArchive } from './docker-export.ts';
export type { ImageSelector } from './refs.ts';
