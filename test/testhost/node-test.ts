/**
 * @module testhost/node-test
 * node:test glue. `withTestHost(t, opts, fn)` boots a host for one test and always powers
 * it off; `useTestHost(opts)` boots one host for the enclosing suite (before/after hooks),
 * which is what a test file should normally do: boots are the expensive part (2 cores).
 * On failure the console's tail is printed as a test diagnostic.
 */
import { after, before, type TestContext } from 'node:test';
import { BerthError } from '../../src/base/errors.ts';
import { bootTestHost } from './boot.ts';
import type { TestHost, TestHostOptions } from './types.ts';

export async function withTestHost<T>(t: TestContext, opts: TestHostOptions, fn: (host: TestHost) => Promise<T>): Promise<T> {
  const host = await bootTestHost(opts);
  let failed = true;
  try {
    const r = await fn(host);
    failed = false;
    return r;
  } finally {
    if (failed) t.diagnostic(`test host ${host.name} console.log tail:\n${host.consoleLog(30)}`);
    await host.poweroff({ keepState: failed || undefined });
  }
}

/**
 * Registers before/after hooks in the current suite (or file) and returns an accessor for
 * the booted host. Call it at the top of a describe() body or at module level.
 */
export function useTestHost(opts: TestHostOptions): () => TestHost {
  let host: TestHost | undefined;
  before(async () => {
    host = await bootTestHost(opts);
  });
  after(async () => {
    await host?.poweroff();
  });
  return () => {
    if (!host) throw new BerthError('FAILED_PRECONDITION', `test host ${opts.name} did not boot`);
    return host;
  };
}
