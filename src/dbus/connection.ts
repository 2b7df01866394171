/**
 * @module dbus/connection
 * The one bus adapter: a connection to the system bus over its unix socket, SASL EXTERNAL
 * authentication (the kernel vouches for our uid), Hello, method calls matched to replies
 * by serial, and signals handed to subscribers. No library: the protocol berth needs is a
 * few hundred lines (wire.ts, message.ts), loads in a few milliseconds instead of ~65 ms
 * for dbus-next or dbus-native (measured, see README "Scale"), and has no native part.
 *
 * The socket keeps the process alive only while a call or a wait is outstanding (hold()),
 * so a CLI command never has to remember to close it. Every call has a deadline (default
 * 25 s, libdbus's); errors are BerthErrors whose details carry the D-Bus error name.
 */
import { createConnection, type Socket } from 'node:net';
import { BerthError, type ErrorCode } from '../base/errors.ts';
import { FLAG_NO_REPLY_EXPECTED, MessageType, bodyOf, decodeMessage, encodeMessage, frameLength, type Message } from './message.ts';
import { marshal } from './wire.ts';

export interface CallRequest {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: readonly unknown[];
  timeoutMs?: number;
}

export interface Signal {
  path: string;
  interface: string;
  member: string;
  sender?: string;
  body: unknown[];
}

/** The narrow surface proxies need: calls, match rules, signals. */
export interface Bus {
  call(req: CallRequest): Promise<unknown[]>;
  addMatch(rule: string): Promise<void>;
  onSignal(handler: (s: Signal) => void): () => void;
  /** Keeps the process alive until the returned function is called. */
  hold(): () => void;
  close(): void;
}

export const DEFAULT_CALL_TIMEOUT_MS = 25_000;
/**
 * How long connecting may take in all. dbus-daemon's system bus drops a connection that
 * has not authenticated within 5 s (auth_timeout) and refuses more than 64 at once
 * (max_incomplete_connections): 100 berth processes starting together on 2 busy cores
 * meet both, so a dropped or refused attempt is retried with backoff until this deadline.
 */
const CONNECT_DEADLINE_MS = 30_000;
const ATTEMPT_TIMEOUT_MS = 10_000;

/** Maps a D-Bus error name to berth's closed code set. */
export function codeForDBusError(name: string): ErrorCode {
  if (/\.(NoSuchUnit|NoSuchMachine|NoSuchImage|NoSuchJob|UnknownObject|FileNotFound)$/.test(name)) return 'NOT_FOUND';
  if (/\.(AccessDenied|InteractiveAuthorizationRequired|AuthFailed)$/.test(name)) return 'PERMISSION_DENIED';
  if (/\.(Timeout|TimedOut|NoReply)$/.test(name)) return 'TIMEOUT';
  if (/\.(InvalidArgs|InvalidSignature)$/.test(name)) return 'INVALID_ARGUMENT';
  return 'FAILED_PRECONDITION';
}

/** The D-Bus error name carried by a failed call, if e is one. */
export function dbusErrorName(e: unknown): string | undefined {
  const d = (e as { details?: { dbusError?: unknown } } | undefined)?.details;
  return typeof d?.dbusError === 'string' ? d.dbusError : undefined;
}

/** Socket paths from a bus address ("unix:path=/x;unix:abstract=y"); abstract ones get a NUL. */
export function socketPaths(address: string): string[] {
  const out: string[] = [];
  for (const a of address.split(';')) {
    const m = /^unix:(.*)$/.exec(a.trim());
    if (!m) continue;
    const kv = Object.fromEntries((m[1] ?? '').split(',').map((p) => {
      const i = p.indexOf('=');
      return [p.slice(0, i), decodeURIComponent(p.slice(i + 1))];
    }));
    if (kv.path) out.push(kv.path);
    else if (kv.abstract) out.push(`\0${kv.abstract}`);
  }
  return out;
}

export function systemBusAddress(): string {
  return process.env.DBUS_SYSTEM_BUS_ADDRESS || 'unix:path=/run/dbus/system_bus_socket';
}

interface Pending {
  resolve: (body: unknown[]) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
  what: string;
  release: () => void;
}

class Connection implements Bus {
  private serial = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Set<(s: Signal) => void>();
  private holds = 0;
  private buf: Buffer = Buffer.alloc(0);
  private dead: BerthError | undefined;
  uniqueName = '';

  constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', (e) => this.fail(new BerthError('CONNECTION_REFUSED', `D-Bus connection failed: ${e.message}`, { cause: e })));
    sock.on('close', () => this.fail(new BerthError('CONNECTION_REFUSED', 'the D-Bus connection was closed')));
    sock.unref();
  }

  hold(): () => void {
    if (this.holds++ === 0) this.sock.ref();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.holds === 0) this.sock.unref();
    };
  }

  private fail(e: BerthError): void {
    if (this.dead) return;
    this.dead = e;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.release();
      p.reject(new BerthError(e.code, `${p.what}: ${e.message}`, { cause: e }));
    }
    this.pending.clear();
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    try {
      for (;;) {
        const n = frameLength(this.buf);
        if (n === undefined || this.buf.length < n) return;
        const m = decodeMessage(this.buf.subarray(0, n));
        this.buf = this.buf.subarray(n);
        this.dispatch(m);
      }
    } catch (e) {
      this.fail(new BerthError('INTERNAL', `malformed D-Bus message: ${(e as Error).message}`, { cause: e }));
      this.sock.destroy();
    }
  }

  private dispatch(m: Message): void {
    if (m.type === MessageType.MethodReturn || m.type === MessageType.Error) {
      const p = m.replySerial === undefined ? undefined : this.pending.get(m.replySerial);
      if (!p) return;
      this.pending.delete(m.replySerial as number);
      clearTimeout(p.timer);
      p.release();
      let body: unknown[];
      try {
        body = bodyOf(m);
      } catch (e) {
        p.reject(new BerthError('INTERNAL', `${p.what}: malformed reply: ${(e as Error).message}`, { cause: e }));
        return;
      }
      if (m.type === MessageType.Error) {
        const name = m.errorName ?? 'org.freedesktop.DBus.Error.Failed';
        const text = typeof body[0] === 'string' ? body[0] : name;
        p.reject(new BerthError(codeForDBusError(name), `${p.what}: ${text}`, { details: { dbusError: name } }));
      } else {
        p.resolve(body);
      }
      return;
    }
    if (m.type === MessageType.Signal && m.path && m.interface && m.member) {
      let body: unknown[];
      try {
        body = bodyOf(m);
      } catch {
        return; // a signal we cannot read is one we do not act on
      }
      const s: Signal = { path: m.path, interface: m.interface, member: m.member, sender: m.sender, body };
      for (const h of this.handlers) h(s);
    }
    // Method calls to us (Peer.Ping and the like) are not answered: berth exports nothing.
  }

  send(m: Omit<Message, 'serial'>): number {
    if (this.dead) throw this.dead;
    const serial = ++this.serial;
    this.sock.write(encodeMessage({ ...m, serial }));
    return serial;
  }

  call(req: CallRequest): Promise<unknown[]> {
    const what = `${req.interface}.${req.member}`;
    if (this.dead) return Promise.reject(new BerthError(this.dead.code, `${what}: ${this.dead.message}`));
    let body: Buffer;
    try {
      body = marshal(req.signature ?? '', req.body ?? []);
    } catch (e) {
      return Promise.reject(new BerthError('INTERNAL', `${what}: ${(e as Error).message}`, { cause: e }));
    }
    return new Promise((resolve, reject) => {
      const serial = this.send({
        type: MessageType.MethodCall, destination: req.destination, path: req.path, interface: req.interface,
        member: req.member, signature: req.signature, body,
      });
      const ms = req.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
      const timer = setTimeout(() => {
        const p = this.pending.get(serial);
        if (!p) return;
        this.pending.delete(serial);
        p.release();
        reject(new BerthError('TIMEOUT', `${what}: no reply within ${ms} ms`, { details: { dbusError: 'org.freedesktop.DBus.Error.NoReply' } }));
      }, ms);
      this.pending.set(serial, { resolve, reject, timer, what, release: this.hold() });
    });
  }

  async addMatch(rule: string): Promise<void> {
    await this.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: [rule] });
  }

  onSignal(handler: (s: Signal) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  /** Fire and forget (no reply expected). */
  notify(req: CallRequest): void {
    this.send({ type: MessageType.MethodCall, flags: FLAG_NO_REPLY_EXPECTED, destination: req.destination, path: req.path, interface: req.interface, member: req.member, signature: req.signature, body: marshal(req.signature ?? '', req.body ?? []) });
  }

  close(): void {
    this.sock.end();
    this.fail(new BerthError('CANCELLED', 'the D-Bus connection was closed'));
  }
}

function uidHex(): string {
  return Buffer.from(String(process.getuid?.() ?? 0), 'ascii').toString('hex');
}

/** Connects, authenticates and says Hello; rejects with CONNECTION_REFUSED/TIMEOUT. */
export async function connectBus(address = systemBusAddress(), opts: { timeoutMs?: number } = {}): Promise<Bus & { uniqueName: string }> {
  const paths = socketPaths(address);
  if (paths.length === 0) throw new BerthError('INVALID_ARGUMENT', `no unix socket in the D-Bus address ${JSON.stringify(address)}`);
  const deadline = Date.now() + (opts.timeoutMs ?? CONNECT_DEADLINE_MS);
  let last: unknown;
  for (let attempt = 0; ; attempt++) {
    for (const path of paths) {
      try {
        return await connectOne(path, Math.max(1000, Math.min(ATTEMPT_TIMEOUT_MS, deadline - Date.now())));
      } catch (e) {
        last = e;
      }
    }
    // No socket, or not allowed: retrying cannot help.
    const cause = (last as { cause?: NodeJS.ErrnoException } | undefined)?.cause;
    // (A unix socket answers a full backlog with EAGAIN; ECONNREFUSED means nobody listens.)
    if (['ENOENT', 'EACCES', 'ECONNREFUSED', 'ENOTSOCK'].includes(cause?.code ?? '') || (last as BerthError | undefined)?.code === 'PERMISSION_DENIED') throw last;
    const wait = Math.min(2000, 50 * 2 ** attempt) * (0.5 + Math.random());
    if (Date.now() + wait >= deadline) throw last;
    await new Promise((r) => setTimeout(r, wait));
  }
}

function connectOne(path: string, timeoutMs: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    const shown = path.startsWith('\0') ? `@${path.slice(1)}` : path;
    let text = '';
    let authed = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new BerthError('TIMEOUT', `D-Bus ${shown}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (e: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      const code: ErrorCode = e.code === 'EACCES' ? 'PERMISSION_DENIED' : 'CONNECTION_REFUSED';
      reject(new BerthError(code, `cannot connect to the system bus at ${shown}: ${e.code ?? e.message} (is dbus running?)`, { cause: e }));
    };
    sock.once('error', onError);
    const onClose = (): void => {
      clearTimeout(timer);
      reject(new BerthError('CONNECTION_REFUSED', `the system bus at ${shown} closed the connection during authentication`));
    };
    sock.once('close', onClose);
    sock.once('connect', () => {
      sock.write(`\0AUTH EXTERNAL ${uidHex()}\r\n`);
    });
    const onAuthData = (d: Buffer): void => {
      text += d.toString('latin1');
      const nl = text.indexOf('\r\n');
      if (nl < 0) {
        if (text.length > 4096) onError(Object.assign(new Error('SASL line too long'), { code: 'EPROTO' }));
        return;
      }
      const line = text.slice(0, nl);
      sock.off('data', onAuthData);
      if (!line.startsWith('OK ')) {
        clearTimeout(timer);
        sock.destroy();
        reject(new BerthError('PERMISSION_DENIED', `the system bus refused authentication: ${line.slice(0, 200)}`));
        return;
      }
      authed = true;
      sock.write('BEGIN\r\n');
      sock.off('error', onError);
      sock.off('close', onClose);
      const conn = new Connection(sock);
      conn.call({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'Hello', timeoutMs })
        .then(([name]) => {
          clearTimeout(timer);
          conn.uniqueName = String(name);
          resolve(conn);
        }, (e: unknown) => {
          clearTimeout(timer);
          sock.destroy();
          reject(e);
        });
    };
    sock.on('data', onAuthData);
    void authed;
  });
}

let shared: Promise<Bus> | undefined;

/** The process's one system-bus connection, opened on first use. */
export function systemBus(): Promise<Bus> {
  if (!shared) {
    shared = connectBus();
    shared.catch(() => {
      shared = undefined;
    });
  }
  return shared;
}
