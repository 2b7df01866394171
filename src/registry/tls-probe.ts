/**
 * @module registry/tls-probe
 * Does host:port speak TLS? Asked before the first request to a loopback registry, which
 * is as often plain HTTP (a local docker-registry, a CI service) as HTTPS. Answering it
 * with a real handshake meant loading node:tls and node:https and running OpenSSL's first
 * handshake: ~15 ms of CPU in a ~150 ms local busybox pull, all of it before the first
 * byte, and all of it for nothing when the registry speaks plain HTTP.
 *
 * So the probe is one TLS ClientHello written by hand over a plain TCP socket, and the
 * first bytes of the answer decide:
 *   - a TLS record (handshake 0x16 or alert 0x15, then major version 3): 'tls'. Any TLS
 *     1.2 or 1.3 server answers this hello with a ServerHello, a HelloRetryRequest (it
 *     offers TLS 1.3 with an empty key_share) or an alert;
 *   - anything else, or a refused connection: 'plain' (the caller tries http://);
 *   - a close with no answer, a reset or a timeout: 'unknown' (the caller's usual path).
 * The hello's "random" starts with CR LF CR LF: a plain-HTTP server reads the 11 bytes
 * before it as a garbage request line ended by an empty line and answers 400 at once,
 * instead of waiting for a line end that a hello might never contain. Nothing is
 * negotiated or trusted: the socket is closed after the first bytes of the answer.
 */
import { connect, isIP } from 'node:net';

const CIPHER_SUITES = [
  0x1301, 0x1302, 0x1303, // TLS 1.3: AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305
  0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, // ECDHE-{ECDSA,RSA} AES-GCM, CHACHA20
  0x009c, 0x009d, 0x002f, 0x0035, // RSA AES-GCM, AES-CBC
];
const GROUPS = [0x001d, 0x0017, 0x0018]; // x25519, secp256r1, secp384r1
const SIGNATURE_ALGORITHMS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201];
const RANDOM = Buffer.concat([Buffer.from('\r\n\r\n', 'latin1'), Buffer.alloc(28, 0x42)]);

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u16list(values: readonly number[]): Buffer {
  return Buffer.concat(values.map(u16));
}

function extension(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data]);
}

/** The ClientHello record (one TLS plaintext record). serverName: SNI, for DNS names only. Pure. */
export function clientHello(serverName?: string): Buffer {
  const exts: Buffer[] = [];
  if (serverName && isIP(serverName) === 0) {
    const name = Buffer.from(serverName, 'ascii');
    exts.push(extension(0x0000, Buffer.concat([u16(name.length + 3), Buffer.from([0]), u16(name.length), name])));
  }
  exts.push(extension(0x000a, Buffer.concat([u16(GROUPS.length * 2), u16list(GROUPS)])));
  exts.push(extension(0x000b, Buffer.from([1, 0]))); // ec_point_formats: uncompressed
  exts.push(extension(0x000d, Buffer.concat([u16(SIGNATURE_ALGORITHMS.length * 2), u16list(SIGNATURE_ALGORITHMS)])));
  exts.push(extension(0x002b, Buffer.from([4, 0x03, 0x04, 0x03, 0x03]))); // supported_versions: 1.3, 1.2
  exts.push(extension(0x0033, u16(0))); // key_share: none offered (a 1.3 server asks for one)
  const extensions = Buffer.concat(exts);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]), RANDOM,
    Buffer.from([0]), // session id: none
    u16(CIPHER_SUITES.length * 2), u16list(CIPHER_SUITES),
    Buffer.from([1, 0]), // compression: null only
    u16(extensions.length), extensions,
  ]);
  const handshake = Buffer.concat([Buffer.from([0x01, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(handshake.length), handshake]);
}

/** Whether an answer's first bytes are a TLS record (a handshake or an alert). Pure. */
export function isTlsRecord(head: Buffer): boolean {
  return (head[0] === 0x16 || head[0] === 0x15) && head[1] === 0x03;
}

export type TlsSpoken = 'tls' | 'plain' | 'unknown';

export function probeTls(host: string, port: number, timeoutMs: number): Promise<TlsSpoken> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let head: Buffer = Buffer.alloc(0);
    let settled = false;
    const done = (r: TlsSpoken): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('unknown'), timeoutMs);
    s.once('connect', () => s.write(clientHello(host)));
    s.on('data', (d: Buffer) => {
      head = head.length === 0 ? d : Buffer.concat([head, d]);
      if (head.length >= 2 || (head[0] !== 0x16 && head[0] !== 0x15)) done(isTlsRecord(head) ? 'tls' : 'plain');
    });
    s.once('end', () => done(head.length > 0 ? (isTlsRecord(head) ? 'tls' : 'plain') : 'unknown'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'plain' : 'unknown'));
    s.once('close', () => done('unknown'));
  });
}
