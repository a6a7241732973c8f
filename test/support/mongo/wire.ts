// MongoDB wire protocol framing for the test harness: OP_QUERY (the driver's legacy handshake),
// OP_MSG (everything after it) and OP_REPLY (the answer to OP_QUERY).
import { type Document } from 'bson';
import { replyParts } from './encoded.js';
import { decodeDocument } from './bson.js';

export const OP_REPLY = 1;
export const OP_QUERY = 2004;
export const OP_MSG = 2013;

const CHECKSUM_PRESENT = 1 << 0;
export const MORE_TO_COME = 1 << 1;
const EXHAUST_ALLOWED = 1 << 16;

export interface Request {
  requestId: number;
  opCode: typeof OP_QUERY | typeof OP_MSG;
  /** The command document (OP_MSG kind 0, or the OP_QUERY query). */
  body: Document;
  /** OP_MSG kind-1 document sequences by identifier (`documents`, `updates`, `deletes`). */
  sequences: Record<string, Document[]>;
  /** The client wants no reply (unacknowledged write). */
  moreToCome: boolean;
  exhaustAllowed: boolean;
}

export class ProtocolError extends Error {}

/**
 * Accumulates socket bytes and yields whole requests. Chunks are joined once a message is
 * complete, so a large insert (many 64 KiB chunks) is copied once, not once per chunk.
 */
export class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Request[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const requests: Request[] = [];
    while (this.buffered >= 4) {
      const length = this.joined(4).readInt32LE(0);
      if (length < 16) throw new ProtocolError(`message length ${length} is too small`);
      if (this.buffered < length) break;
      const all = this.joined(length);
      requests.push(parseMessage(all.subarray(0, length)));
      const rest = all.subarray(length);
      this.chunks = rest.length ? [rest] : [];
      this.buffered = rest.length;
    }
    return requests;
  }

  /** The first chunk, holding at least `bytes` (chunks joined when it does not). */
  private joined(bytes: number): Buffer {
    if (this.chunks[0]!.length < bytes) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0]!;
  }
}

function parseMessage(message: Buffer): Request {
  const requestId = message.readInt32LE(4);
  const opCode = message.readInt32LE(12);
  if (opCode === OP_QUERY) return parseQuery(message, requestId);
  if (opCode === OP_MSG) return parseMsg(message, requestId);
  throw new ProtocolError(`unsupported opCode ${opCode}`);
}

function parseQuery(message: Buffer, requestId: number): Request {
  let offset = 20; // header + flags
  const nameEnd = message.indexOf(0, offset);
  offset = nameEnd + 1 + 8; // cstring, numberToSkip, numberToReturn
  const size = message.readInt32LE(offset);
  const body = decodeDocument(message.subarray(offset, offset + size));
  // Legacy commands may wrap the command as {$query: {...}, $readPreference: ...}.
  const command = (body.$query as Document | undefined) ?? body;
  return {
    requestId,
    opCode: OP_QUERY,
    body: command,
    sequences: {},
    moreToCome: false,
    exhaustAllowed: false,
  };
}

function parseMsg(message: Buffer, requestId: number): Request {
  const flags = message.readUInt32LE(16);
  if (flags & 0xffff & ~(CHECKSUM_PRESENT | MORE_TO_COME)) {
    throw new ProtocolError(`unknown required OP_MSG flag bits ${flags & 0xffff}`);
  }
  const end = flags & CHECKSUM_PRESENT ? message.length - 4 : message.length;
  let offset = 20;
  let body: Document | undefined;
  const sequences: Record<string, Document[]> = {};
  while (offset < end) {
    const kind = message.readUInt8(offset);
    offset += 1;
    if (kind === 0) {
      const size = message.readInt32LE(offset);
      body = decodeDocument(message.subarray(offset, offset + size));
      offset += size;
    } else if (kind === 1) {
      const size = message.readInt32LE(offset);
      const sectionEnd = offset + size;
      const idEnd = message.indexOf(0, offset + 4);
      const identifier = message.toString('utf8', offset + 4, idEnd);
      const docs: Document[] = [];
      let docOffset = idEnd + 1;
      while (docOffset < sectionEnd) {
        const docSize = message.readInt32LE(docOffset);
        docs.push(decodeDocument(message.subarray(docOffset, docOffset + docSize)));
        docOffset += docSize;
      }
      sequences[identifier] = docs;
      offset = sectionEnd;
    } else {
      throw new ProtocolError(`unknown OP_MSG section kind ${kind}`);
    }
  }
  if (!body) throw new ProtocolError('OP_MSG without a kind-0 section');
  return {
    requestId,
    opCode: OP_MSG,
    body,
    sequences,
    moreToCome: (flags & MORE_TO_COME) !== 0,
    exhaustAllowed: (flags & EXHAUST_ALLOWED) !== 0,
  };
}

let nextResponseId = 1;

/**
 * A message: the header, `fields` (what the op code puts before the document) and the document,
 * whose pieces are copied once, into the message.
 */
function message(responseTo: number, opCode: number, fields: Buffer, doc: Document): Buffer {
  const parts = replyParts(doc);
  let length = 16 + fields.length;
  for (const part of parts) length += part.length;
  const out = Buffer.allocUnsafe(length);
  out.writeInt32LE(length, 0);
  out.writeInt32LE(nextResponseId++ & 0x7fffffff, 4);
  out.writeInt32LE(responseTo, 8);
  out.writeInt32LE(opCode, 12);
  fields.copy(out, 16);
  let at = 16 + fields.length;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** An OP_MSG reply; `moreToCome`: more replies follow without a request (exhaust). */
export function encodeMsg(responseTo: number, doc: Document, moreToCome = false): Buffer {
  const flagsAndKind = Buffer.alloc(5); // flags, then section kind 0
  if (moreToCome) flagsAndKind.writeUInt32LE(MORE_TO_COME, 0);
  return message(responseTo, OP_MSG, flagsAndKind, doc);
}

export function encodeReply(responseTo: number, doc: Document): Buffer {
  const fields = Buffer.alloc(20); // responseFlags, cursorID (int64 0), startingFrom
  fields.writeInt32LE(1, 16); // numberReturned
  return message(responseTo, OP_REPLY, fields, doc);
}
