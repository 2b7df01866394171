/**
 * @module dbus/systemd1
 * A typed proxy for org.freedesktop.systemd1.Manager and its units, the calls berth makes
 * instead of spawning systemctl: ListUnitsByPatterns, GetUnit, StartUnit/StopUnit with job
 * tracking, KillUnit, ResetFailedUnit, Reload, and unit properties (Properties.GetAll).
 *
 * Jobs: StartUnit/StopUnit return a job object path at once; the job's end is the
 * Manager's JobRemoved(id, job, unit, result) signal. runJob() subscribes and adds the
 * match rule *before* the call and remembers every JobRemoved it sees, so a job that ends
 * before the reply has been read is not missed.
 */
import { BerthError } from '../base/errors.ts';
import { dbusErrorName, type Bus } from './connection.ts';

const DEST = 'org.freedesktop.systemd1';
const PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const PROPS = 'org.freedesktop.DBus.Properties';
export const UNIT_IFACE = 'org.freedesktop.systemd1.Unit';
export const SERVICE_IFACE = 'org.freedesktop.systemd1.Service';

export interface UnitListEntry {
  id: string;
  description: string;
  loadState: string;
  activeState: string;
  subState: string;
  following: string;
  path: string;
  jobId: number;
  jobType: string;
  jobPath: string;
}

/** How a job ended: done, canceled, timeout, failed, dependency, skipped, invalid. */
export type JobResult = string;

export type JobMode = 'replace' | 'fail' | 'isolate' | 'ignore-dependencies' | 'ignore-requirements';

/** The object path systemd gives a unit (bus_label_escape of its name). */
export function unitObjectPath(unit: string): string {
  let out = '';
  for (const b of Buffer.from(unit, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9]/.test(c) ? c : `_${b.toString(16).padStart(2, '0')}`;
  }
  return `/org/freedesktop/systemd1/unit/${out || '_'}`;
}

export class SystemdManager {
  private subscribed: Promise<void> | undefined;
  private listening = false;
  private readonly matches = new Map<string, Promise<void>>();
  private readonly ended = new Map<string, JobResult>();
  private readonly waiters = new Map<string, Set<(r: JobResult) => void>>();
  private inflight = 0;

  constructor(private readonly bus: Bus) {}

  private call(member: string, signature = '', body: unknown[] = [], timeoutMs?: number): Promise<unknown[]> {
    return this.bus.call({ destination: DEST, path: PATH, interface: MANAGER, member, signature, body, timeoutMs });
  }

  async listUnitsByPatterns(states: string[], patterns: string[]): Promise<UnitListEntry[]> {
    const [rows] = await this.call('ListUnitsByPatterns', 'asas', [states, patterns]);
    return (rows as unknown[][]).map((r) => ({
      id: r[0] as string, description: r[1] as string, loadState: r[2] as string, activeState: r[3] as string,
      subState: r[4] as string, following: r[5] as string, path: r[6] as string, jobId: r[7] as number,
      jobType: r[8] as string, jobPath: r[9] as string,
    }));
  }

  /** The unit's object path when systemd has it loaded; undefined when it has not (GetUnit loads nothing). */
  async getUnit(unit: string): Promise<string | undefined> {
    try {
      const [p] = await this.call('GetUnit', 's', [unit]);
      return p as string;
    } catch (e) {
      if (dbusErrorName(e) === 'org.freedesktop.systemd1.NoSuchUnit') return undefined;
      throw e;
    }
  }

  /** Loads the unit if needed (like `systemctl show`) and returns its object path. */
  async loadUnit(unit: string): Promise<string> {
    const [p] = await this.call('LoadUnit', 's', [unit]);
    return p as string;
  }

  /** All properties of one interface of a unit object (values unwrapped from their variants). */
  async unitProperties(path: string, iface: string = UNIT_IFACE): Promise<Record<string, unknown>> {
    const [m] = await this.bus.call({ destination: DEST, path, interface: PROPS, member: 'GetAll', signature: 's', body: [iface] });
    return Object.fromEntries(m as Map<string, unknown>);
  }

  async unitProperty(path: string, iface: string, name: string): Promise<unknown> {
    const [v] = await this.bus.call({ destination: DEST, path, interface: PROPS, member: 'Get', signature: 'ss', body: [iface, name] });
    return v;
  }

  async resetFailedUnit(unit: string): Promise<void> {
    await this.call('ResetFailedUnit', 's', [unit]);
  }

  async killUnit(unit: string, who: 'main' | 'control' | 'all', signal: number): Promise<void> {
    await this.call('KillUnit', 'ssi', [unit, who, signal]);
  }

  /** daemon-reload; the reply comes once systemd has re-read every unit. */
  async reload(timeoutMs = 90_000): Promise<void> {
    await this.call('Reload', '', [], timeoutMs);
  }

  /**
   * JobRemoved of this unit reaches this connection from here on. The match names the unit
   * (arg2), so a process sees its own jobs only: in a storm of 100 starts each client used
   * to receive and parse every other client's JobRemoved as well (n² messages).
   */
  private subscribe(unit: string): Promise<void> {
    if (!this.listening) {
      this.listening = true;
      this.bus.onSignal((s) => {
        if (s.interface !== MANAGER || s.member !== 'JobRemoved' || s.path !== PATH) return;
        const job = s.body[1] as string;
        const result = s.body[3] as string;
        // Several calls can share one job (systemd merges a StartUnit into a queued one).
        for (const w of this.waiters.get(job) ?? []) w(result);
        if (this.inflight > 0) this.ended.set(job, result);
      });
    }
    // Inside a quoted match value only an apostrophe would need escaping; unit names have none.
    const filter = unit.includes("'") ? '' : `,arg2='${unit}'`;
    const key = filter === '' ? '*' : unit;
    let p = this.matches.get(key) ?? this.matches.get('*');
    if (p === undefined) {
      // systemd emits job signals only while a client is subscribed; both requests go out at once.
      this.subscribed ??= this.call('Subscribe').then(() => {}, (e: unknown) => {
        if (!/AlreadySubscribed/.test(dbusErrorName(e) ?? '')) throw e;
      });
      const sub = this.subscribed;
      p = Promise.all([this.bus.addMatch(`type='signal',sender='${DEST}',path='${PATH}',interface='${MANAGER}',member='JobRemoved'${filter}`), sub]).then(() => {});
      this.matches.set(key, p);
      p.catch(() => {
        this.matches.delete(key);
        if (this.subscribed === sub) this.subscribed = undefined;
      });
    }
    return p;
  }

  /**
   * Queues a job (StartUnit, StopUnit, RestartUnit) and resolves with its result once
   * JobRemoved says it ended; TIMEOUT after timeoutMs (the job keeps running in systemd).
   */
  async runJob(method: 'StartUnit' | 'StopUnit' | 'RestartUnit', unit: string, opts: { mode?: JobMode; timeoutMs?: number } = {}): Promise<JobResult> {
    await this.subscribe(unit);
    const release = this.bus.hold();
    this.inflight++;
    try {
      const [job] = await this.call(method, 'ss', [unit, opts.mode ?? 'replace']);
      const path = job as string;
      const early = this.ended.get(path);
      if (early !== undefined) return early;
      const ms = opts.timeoutMs ?? 120_000;
      return await new Promise<JobResult>((resolve, reject) => {
        const set = this.waiters.get(path) ?? new Set<(r: JobResult) => void>();
        this.waiters.set(path, set);
        const drop = (): void => {
          set.delete(done);
          if (set.size === 0 && this.waiters.get(path) === set) this.waiters.delete(path);
        };
        const timer = setTimeout(() => {
          drop();
          reject(new BerthError('TIMEOUT', `${method} ${unit}: the job did not finish within ${ms} ms`, { details: { unit, job: path } }));
        }, ms);
        const done = (r: JobResult): void => {
          clearTimeout(timer);
          drop();
          resolve(r);
        };
        set.add(done);
      });
    } finally {
      if (--this.inflight === 0) this.ended.clear();
      release();
    }
  }
}
