/**
 * @module registry/fake-server
 * Test helper, not used by berth itself: an in-process HTTP server on 127.0.0.1:0 whose
 * behaviour is a plain handler function, recording every request it sees. Registry tests
 * script 401 challenges, redirects, 429/5xx and Range answers with it, fast and without
 * the network (ggcr's pkg/registry idea, reduced to what a pull client needs).
 */
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export type FakeHandler = (req: SeenRequest, res: ServerResponse) => void | Promise<void>;

export interface FakeServer {
  /** host:port, e.g. 127.0.0.1:41234 */
  host: string;
  /** http://host:port */
  origin: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

export async function startFakeServer(handler: FakeHandler): Promise<FakeServer> {
  const requests: SeenRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen: SeenRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString() };
      requests.push(seen);
      (async () => handler(seen, res))().catch((e: unknown) => {
        res.statusCode = 599;
        res.end(String(e));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;
  return {
    host,
    origin: `http://${host}`,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Sends a JSON body with a status and optional headers. */
export function sendJSON(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(data.length), ...headers });
  res.end(data);
}

/** A registry error body as the distribution spec defines it. */
export function registryError(code: string, message = code.toLowerCase()): { errors: Array<{ code: string; message: string }> } {
  return { errors: [{ code, message }] };
}

/**
 * For a test file: `server(handler)` starts fake servers and `track(client)` registers
 * clients; everything is closed in one `after` hook.
 */
export function useFakeServers(): {
  server: (h: Parameters<typeof startFakeServer>[0]) => Promise<FakeServer>;
  track: <T extends { close(): Promise<void> }>(c: T) => T;
} {
  const servers: FakeServer[] = [];
  const closables: Array<{ close(): Promise<void> }> = [];
  after(async () => {
    await Promise.all(closables.map((c) => c.close()));
    await Promise.all(servers.map((s) => s.close()));
  });
  return {
    server: async (h) => {
      const s = await startFakeServer(h);
      servers.push(s);
      return s;
    },
    track: (c) => {
      closables.push(c);
      return c;
    },
  };
}
