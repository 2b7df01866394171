/**
 * @module dbus/message
 * D-Bus messages, pure: a Message is encoded into bytes for the socket, and a byte stream
 * is cut into Messages (frameLength tells how many bytes one needs). Header layout per the
 * specification: endianness 'l', type, flags, version 1, body length, serial, then the
 * header fields a(yv), padded to 8, then the body.
 */
import { Reader, WireError, Writer, parseSignature, unmarshal, type TypeNode } from './wire.ts';

export const MessageType = { MethodCall: 1, MethodReturn: 2, Error: 3, Signal: 4 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const FLAG_NO_REPLY_EXPECTED = 0x1;

export interface Message {
  type: MessageType;
  flags?: number;
  serial: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  signature?: string;
  body?: Buffer;
}

/** A message is at most 128 MiB (the specification's limit). */
export const MAX_MESSAGE = 128 * 1024 * 1024;

const FIELDS: Array<[number, keyof Message, string]> = [
  [1, 'path', 'o'],
  [2, 'interface', 's'],
  [3, 'member', 's'],
  [4, 'errorName', 's'],
  [5, 'replySerial', 'u'],
  [6, 'destination', 's'],
  [7, 'sender', 's'],
  [8, 'signature', 'g'],
];

const FIELD_ARRAY = parseSignature('a(yv)')[0] as TypeNode;

export function encodeMessage(m: Message): Buffer {
  const body = m.body ?? Buffer.alloc(0);
  const w = new Writer();
  w.write({ kind: 'basic', code: 'y' }, 'l'.charCodeAt(0));
  w.write({ kind: 'basic', code: 'y' }, m.type);
  w.write({ kind: 'basic', code: 'y' }, m.flags ?? 0);
  w.write({ kind: 'basic', code: 'y' }, 1);
  w.write({ kind: 'basic', code: 'u' }, body.length);
  w.write({ kind: 'basic', code: 'u' }, m.serial);
  const fields: unknown[] = [];
  for (const [code, key, sig] of FIELDS) {
    const v = m[key];
    if (v === undefined || (key === 'signature' && v === '')) continue;
    fields.push([code, { sig, value: v }]);
  }
  w.write(FIELD_ARRAY, fields);
  w.align(8);
  const out = Buffer.concat([w.bytes(), body]);
  if (out.length > MAX_MESSAGE) throw new WireError('message larger than 128 MiB');
  return out;
}

/** Bytes the message at the start of buf needs, or undefined when fewer than 16 are there. */
export function frameLength(buf: Buffer): number | undefined {
  if (buf.length < 16) return undefined;
  if (buf[0] !== 0x6c) throw new WireError(`unsupported endianness ${JSON.stringify(String.fromCharCode(buf[0] ?? 0))} (only little-endian is spoken)`);
  if (buf[3] !== 1) throw new WireError(`unsupported protocol version ${buf[3]}`);
  const bodyLen = buf.readUInt32LE(4);
  const fieldsLen = buf.readUInt32LE(12);
  const header = 16 + fieldsLen;
  const total = header + ((8 - (header % 8)) % 8) + bodyLen;
  if (fieldsLen > MAX_MESSAGE || total > MAX_MESSAGE) throw new WireError(`message of ${total} bytes is above the 128 MiB limit`);
  return total;
}

/** Decodes one whole message (exactly frameLength(buf) bytes). */
export function decodeMessage(buf: Buffer): Message {
  const r = new Reader(buf);
  r.pos = 1;
  const type = buf.readUInt8(1) as MessageType;
  const flags = buf.readUInt8(2);
  const bodyLen = buf.readUInt32LE(4);
  const serial = buf.readUInt32LE(8);
  r.pos = 12;
  const fields = r.read(FIELD_ARRAY) as Array<[number, unknown]>;
  r.align(8);
  if (r.pos + bodyLen !== buf.length) throw new WireError('message length does not match its header');
  const m: Message = { type, flags, serial, body: buf.subarray(r.pos) };
  for (const [code, value] of fields) {
    const f = FIELDS.find(([c]) => c === code);
    if (!f) continue; // unknown fields must be ignored (UNIX_FDS and future ones)
    const [, key, sig] = f;
    const ok = sig === 'u' ? typeof value === 'number' : typeof value === 'string';
    if (!ok) throw new WireError(`header field ${key} has the wrong type`);
    (m as unknown as Record<string, unknown>)[key] = value;
  }
  if (type < 1 || type > 4) throw new WireError(`unknown message type ${type}`);
  if (serial === 0) throw new WireError('message with serial 0');
  return m;
}

/** The body of m read by its own signature. */
export function bodyOf(m: Message): unknown[] {
  return unmarshal(m.signature ?? '', m.body ?? Buffer.alloc(0));
}
