/**
 * @module unit
 * systemd INI files (units, drop-ins, .nspawn settings): a round-tripping model and the
 * quoting rules for each kind of value berth writes into them.
 */
export { UnitFile, parseUnit, serializeUnit } from './unit-file.ts';
export type { UnitLine, UnitSection, ParseOptions } from './unit-file.ts';
export {
  assertSafeValue,
  escapeNspawnPath,
  escapeSpecifiers,
  isUnitEnvName,
  MAX_VALUE_LENGTH,
  parseNspawnWords,
  quoteEnvironment,
  quoteExecArg,
  quoteExecLine,
  quoteNspawnWord,
} from './quote.ts';
export type { SafeValueOptions } from './quote.ts';
