/**
 * @module base/trace
 * Step timings for `--debug` (or BERTH_DEBUG=1): `trace('image resolved')` prints the
 * milliseconds since the process started (Node's own start included, performance.now()
 * counts from the time origin), so a slow `run -d` shows which step the time goes to.
 * Costs nothing when off.
 */

let enabled = Boolean(process.env.BERTH_DEBUG);

export function enableTrace(on = true): void {
  enabled = on;
}

export function traceEnabled(): boolean {
  return enabled;
}

export function trace(step: string): void {
  if (enabled) process.stderr.write(`berth: [${performance.now().toFixed(1)} ms] ${step}\n`);
}
