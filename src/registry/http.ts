/**
 * @module registry/http
 * One HTTP/1.1 request with Node's own http/https modules and keep-alive agents. Chosen over
 * undici for start-up: loading undici costs ~55 ms on every pull (measured: `import` of the
 * bundled chunk 121 ms vs node:https 68 ms vs bare node 61 ms), more than a whole busybox
 * layer takes to fetch from a local registry. Timeouts, as the transport needs them:
 * connect, time to response headers, and body idle time; each fails with a distinct code
 * that http-errors.ts maps (ETIMEDOUT, ERR_HEADERS_TIMEOUT, ERR_BODY_TIMEOUT).
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { closeSync, constants as FS, fstatSync, openSync, readFileSync } from 'node:fs';
import type { SecureContext } from 'node:tls';
import type { Readable } from 'node:stream';

import { https as httpsModule, tls as tlsModule } from '../base/builtins.ts';

type TlsModules = { https: typeof import('node:https'); tls: typeof import('node:tls') };
let tlsModules: TlsModules | undefined;

/**
 * node:https and node:tls, loaded by the first HTTPS request: a pull from a plain-HTTP
 * registry never loads them (their code and OpenSSL's first handshake were ~15 ms of CPU
 * in a ~150 ms local busybox pull, before its first byte).
 */
function loadTls(): TlsModules {
  return (tlsModules ??= { https: httpsModule(), tls: tlsModule() });
}

/** A streaming response body with the two conveniences the registry client uses. */
export type ResponseBody = Readable & {
  arrayBuffer(): Promise<ArrayBuffer>;
  /** Reads and discards up to limit bytes (so the connection can be reused), then closes. */
  dump(opts?: { limit?: number }): Promise<void>;
};

export interface HttpResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
}

export interface HttpAgents {
  http: HttpAgent;
  /** Made by the first HTTPS request (loadTls). */
  https?: HttpsAgent;
  /** Whether the https agent verifies certificates (false: --tls-verify=false, insecure hosts). */
  verify: boolean;
}

export function createAgents(opts: { rejectUnauthorized: boolean }): HttpAgents {
  return { http: new HttpAgent({ keepAlive: true }), verify: opts.rejectUnauthorized };
}

export function destroyAgents(a: HttpAgents): void {
  a.http.destroy();
  a.https?.destroy();
}

export interface RequestOptions {
  method: string;
  headers: Record<string, string>;
  body?: string | null;
  signal?: AbortSignal;
  agents: HttpAgents;
  connectTimeout: number;
  headersTimeout: number;
  bodyTimeout: number;
}

function codedError(code: string, message: string): NodeJS.ErrnoException {
  const e = new Error(message) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

function decorate(res: IncomingMessage): ResponseBody {
  const body = res as unknown as ResponseBody;
  body.arrayBuffer = async () => {
    const chunks: Buffer[] = [];
    for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
    const b = Buffer.concat(chunks);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  };
  body.dump = async (opts = {}) => {
    const limit = opts.limit ?? 128 * 1024;
    let n = 0;
    for await (const c of res as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > limit) break;
    }
    res.destroy();
  };
  return body;
}

/**
 * NODE_EXTRA_CA_CERTS, loaded only when berth first speaks TLS. Node 20 parses that file
 * while it starts, before any of berth runs: with Debian's 140-certificate bundle that is
 * ~90 ms on every command here (`node -e 0`: 0.12 s with it, 0.03 s without). So bin/berth
 * moves the variable to BERTH_NODE_EXTRA_CA_CERTS before it starts Node, and this context
 * adds the file's certificates to Node's own roots, which is what Node would have done.
 * A file that cannot be read is ignored with a warning, as Node ignores it.
 */
let extraCa: SecureContext | null | undefined;
function extraCaContext({ createSecureContext, rootCertificates }: TlsModules['tls']): SecureContext | undefined {
  if (extraCa === undefined) {
    extraCa = null;
    const file = process.env.BERTH_NODE_EXTRA_CA_CERTS;
    if (file) {
      try {
        extraCa = createSecureContext({ ca: [...rootCertificates, readCaFile(file)] });
      } catch (e) {
        process.stderr.write(`berth: warning: ignoring extra CA certificates from ${file} (NODE_EXTRA_CA_CERTS): ${(e as Error).message}\n`);
      }
    }
  }
  return extraCa ?? undefined;
}

/** A CA bundle: a regular file of at most 16 MiB (a FIFO or a device would block or never end). */
function readCaFile(file: string): string {
  const fd = openSync(file, FS.O_RDONLY | FS.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > 16 << 20) throw new Error(`${st.size} bytes, more than 16 MiB`);
    return readFileSync(fd, 'latin1');
  } finally {
    closeSync(fd);
  }
}

/**
 * The TLS context of connections that verify nothing (--tls-verify=false, `insecure = true`):
 * no trust anchors at all, since none is consulted. Node's default context parses its ~140
 * bundled root certificates on first use, 30-140 ms measured here, which was the biggest
 * single cost of a local busybox pull (its HTTPS probe runs before the plain-HTTP fallback).
 */
let noCa: SecureContext | undefined;
function unverifiedContext(tls: TlsModules['tls']): SecureContext {
  return (noCa ??= tls.createSecureContext({ ca: [] }));
}

export function request(url: URL, o: RequestOptions): Promise<HttpResponse> {
  const secure = url.protocol === 'https:';
  const m = secure ? loadTls() : undefined;
  if (m) o.agents.https ??= new m.https.Agent({ keepAlive: true, rejectUnauthorized: o.agents.verify });
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (e: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(headersTimer);
      reject(e);
    };
    const headers = { ...o.headers };
    if (o.body) headers['content-length'] = String(Buffer.byteLength(o.body));
    const req = (m ? m.https.request : httpRequest)(url, {
      method: o.method,
      headers,
      agent: m ? o.agents.https : o.agents.http,
      signal: o.signal,
      ...(m ? { secureContext: o.agents.verify ? extraCaContext(m.tls) : unverifiedContext(m.tls) } : {}),
    }, (res) => {
      if (settled) {
        res.destroy();
        return;
      }
      settled = true;
      clearTimeout(headersTimer);
      res.setTimeout(o.bodyTimeout, () => res.destroy(codedError('ERR_BODY_TIMEOUT', `no data for ${o.bodyTimeout} ms`)));
      resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: decorate(res) });
    });
    const headersTimer = setTimeout(() => req.destroy(codedError('ERR_HEADERS_TIMEOUT', `no answer within ${o.headersTimeout} ms`)), o.headersTimeout);
    req.on('socket', (s) => {
      if (!s.connecting) return;
      const t = setTimeout(() => req.destroy(codedError('ETIMEDOUT', `connect timed out after ${o.connectTimeout} ms`)), o.connectTimeout);
      s.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(t));
      s.once('close', () => clearTimeout(t));
    });
    req.on('error', fail);
    req.end(o.body ?? undefined);
  });
}
