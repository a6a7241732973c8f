// The PostgreSQL wire protocol (v3), server side, as far as the `pg` driver uses it: startup
// without password (CrateDB's default user `crate` has none), simple query, and the extended
// protocol (Parse/Bind/Describe/Execute/Sync/Close/Flush). Hand-written on node:net because
// pg-gateway only frames messages and authenticates: Parse and Bind would still be ours, and its
// per-chunk async handler can interleave chunks while a statement waits (pause()).
import type net from 'node:net';
import { splitStatements } from './sql.js';

/** A column of a result: its name and PostgreSQL type OID (text format is always used). */
export interface ResultColumn {
  name: string;
  oid: number;
}

export interface StatementResult {
  /** Null for statements that return no rows (NoData). */
  columns: ResultColumn[] | null;
  /** Values in text format, null for SQL NULL. */
  rows: (string | null)[][];
  /** CommandComplete tag, e.g. `INSERT 0 3`, `SELECT 2`. */
  tag: string;
}

/** An error as CrateDB sends it: SQLSTATE and message (`PGError.fromThrowable`). */
export class PgError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What runs statements: the harness's engine with faults in front. */
export interface StatementRunner {
  run(sql: string, params: (string | null)[], session: SessionInfo): Promise<StatementResult>;
  /** Throws the parse error of the first statement that does not parse. */
  parse(statements: string[]): void;
}

export interface SessionInfo {
  /** Default schema: the database named in the connection URL, as CrateDB does. */
  schema: string;
}

interface Prepared {
  sql: string;
}

interface Portal {
  sql: string;
  params: (string | null)[];
  result: StatementResult | null;
}

/** Backend message writer: type byte, length, body. */
class Out {
  private parts: Buffer[] = [];
  msg(type: string, body: Buffer = Buffer.alloc(0)): void {
    const head = Buffer.alloc(5);
    head.write(type, 0, 'latin1');
    head.writeInt32BE(body.length + 4, 1);
    this.parts.push(head, body);
  }
  take(): Buffer {
    const out = Buffer.concat(this.parts);
    this.parts = [];
    return out;
  }
}

const cstr = (s: string) => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
const int16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

function rowDescription(columns: ResultColumn[]): Buffer {
  const parts = [int16(columns.length)];
  for (const c of columns) {
    parts.push(cstr(c.name), int32(0), int16(0), int32(c.oid), int16(-1), int32(-1), int16(0));
  }
  return Buffer.concat(parts);
}

function dataRow(values: (string | null)[]): Buffer {
  const parts = [int16(values.length)];
  for (const v of values) {
    if (v === null) parts.push(int32(-1));
    else {
      const bytes = Buffer.from(v, 'utf8');
      parts.push(int32(bytes.length), bytes);
    }
  }
  return Buffer.concat(parts);
}

function errorResponse(error: PgError): Buffer {
  return Buffer.concat([
    Buffer.from('S'),
    cstr('ERROR'),
    Buffer.from('V'),
    cstr('ERROR'),
    Buffer.from('C'),
    cstr(error.code),
    Buffer.from('M'),
    cstr(error.message),
    Buffer.from([0]),
  ]);
}

/** Reads fields of one frontend message body. */
class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  int16(): number {
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  byte(): string {
    return String.fromCharCode(this.buf[this.pos++]!);
  }
}

/**
 * One client connection. Messages are handled strictly in order: a statement that waits (pause)
 * holds back everything behind it, as a busy server would.
 */
export class WireSession {
  private buffer: Buffer = Buffer.alloc(0);
  private started = false;
  private queue: Promise<void> = Promise.resolve();
  private readonly prepared = new Map<string, Prepared>();
  private readonly portals = new Map<string, Portal>();
  /** After an error in the extended protocol, messages are skipped until Sync. */
  private skipping = false;
  private readonly out = new Out();
  private info: SessionInfo = { schema: 'doc' };

  constructor(
    private readonly socket: net.Socket,
    private readonly runner: StatementRunner,
    private readonly version: () => string,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', () => socket.destroy());
  }

  private receive(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      const headLength = this.started ? 5 : 4;
      if (this.buffer.length < headLength) return;
      const length = this.buffer.readInt32BE(this.started ? 1 : 0);
      const total = (this.started ? 1 : 0) + length;
      if (this.buffer.length < total) return;
      const message = this.buffer.subarray(0, total);
      this.buffer = this.buffer.subarray(total);
      if (!this.started) this.startup(message);
      else {
        const type = String.fromCharCode(message[0]!);
        const body = message.subarray(5);
        this.queue = this.queue.then(() => this.handle(type, body));
      }
    }
  }

  private send(): void {
    const data = this.out.take();
    if (data.length && !this.socket.destroyed) this.socket.write(data);
  }

  private startup(message: Buffer): void {
    const code = message.readInt32BE(4);
    if (code === 80877103 || code === 80877104) {
      // SSLRequest / GSSENCRequest: not offered.
      this.socket.write('N');
      return;
    }
    if (code === 80877102) {
      // CancelRequest: statements here finish at once or wait for resume(); nothing to cancel.
      this.socket.end();
      return;
    }
    this.started = true;
    const r = new Reader(message.subarray(8));
    const params: Record<string, string> = {};
    for (let key = r.cstring(); key !== ''; key = r.cstring()) params[key] = r.cstring();
    // The URL's database names the default schema (`doc` when none is given).
    if (params.database && params.database !== params.user) this.info = { schema: params.database };
    this.out.msg('R', int32(0));
    for (const [name, value] of [
      ['crate_version', this.version()],
      ['server_version', '14.0'],
      ['server_encoding', 'UTF8'],
      ['client_encoding', 'UTF8'],
      ['datestyle', 'ISO'],
      ['TimeZone', 'UTC'],
      ['integer_datetimes', 'on'],
      ['standard_conforming_strings', 'on'],
    ] as const) {
      this.out.msg('S', Buffer.concat([cstr(name), cstr(value)]));
    }
    this.out.msg(
      'K',
      Buffer.concat([int32(process.pid), int32(Math.floor(Math.random() * 2 ** 31))]),
    );
    this.out.msg('Z', Buffer.from('I'));
    this.send();
  }

  private async handle(type: string, body: Buffer): Promise<void> {
    if (this.socket.destroyed) return;
    if (type === 'X') {
      this.socket.end();
      return;
    }
    if (type === 'Q') {
      await this.simpleQuery(new Reader(body).cstring());
      return;
    }
    if (type === 'S') {
      this.skipping = false;
      this.out.msg('Z', Buffer.from('I'));
      this.send();
      return;
    }
    if (type === 'H') {
      this.send();
      return;
    }
    if (this.skipping) return;
    try {
      await this.extended(type, new Reader(body));
    } catch (error) {
      this.out.msg('E', errorResponse(asPgError(error)));
      this.skipping = true;
      this.send();
    }
  }

  private async simpleQuery(text: string): Promise<void> {
    const statements = text.trim() === '' ? [] : splitStatements(text);
    if (statements.length === 0) this.out.msg('I');
    // All statements are parsed before the first runs (`handleSimpleQuery`).
    try {
      this.runner.parse(statements);
    } catch (error) {
      this.out.msg('E', errorResponse(asPgError(error)));
      statements.length = 0;
    }
    for (const statement of statements) {
      try {
        const result = await this.runner.run(statement, [], this.info);
        this.writeResult(result, true);
      } catch (error) {
        this.out.msg('E', errorResponse(asPgError(error)));
        break;
      }
    }
    this.out.msg('Z', Buffer.from('I'));
    this.send();
  }

  private writeResult(result: StatementResult, withDescription: boolean): void {
    if (withDescription && result.columns) this.out.msg('T', rowDescription(result.columns));
    for (const row of result.rows) this.out.msg('D', dataRow(row));
    this.out.msg('C', cstr(result.tag));
  }

  private async extended(type: string, r: Reader): Promise<void> {
    switch (type) {
      case 'P': {
        const name = r.cstring();
        const sql = r.cstring();
        this.prepared.set(name, { sql });
        this.out.msg('1');
        return;
      }
      case 'B': {
        const portal = r.cstring();
        const name = r.cstring();
        const statement = this.prepared.get(name);
        if (!statement) throw new PgError('26000', `No statement found with name: ${name}`);
        // Counts are read as signed shorts (`FormatCodes.fromBuffer`, `handleBindMessage`): the
        // `pg` driver writes 32768 parameters as -32768, and `new FormatCode[n]` refuses it.
        const formatCount = r.int16();
        if (formatCount < 0) throw new PgError('XX000', String(formatCount));
        const formats = Array.from({ length: formatCount }, () => r.int16());
        const count = r.int16();
        // `handleBindMessage` → `new ArrayList<>(n)`.
        if (count < 0) throw new PgError('XX000', `Illegal Capacity: ${count}`);
        const params: (string | null)[] = [];
        for (let i = 0; i < count; i++) {
          const length = r.int32();
          if (length === -1) {
            params.push(null);
            continue;
          }
          const format = formats.length === 1 ? formats[0] : (formats[i] ?? 0);
          if (format !== 0) throw new PgError('XX000', 'binary parameters are not supported');
          params.push(r.bytes(length).toString('utf8'));
        }
        this.portals.set(portal, { sql: statement.sql, params, result: null });
        this.out.msg('2');
        return;
      }
      case 'D': {
        const kind = r.byte();
        const name = r.cstring();
        if (kind === 'S') {
          // Parameter types are not known before binding: all untyped, as CrateDB answers for
          // parameters it cannot type; the row shape comes with the portal's Describe.
          const statement = this.prepared.get(name);
          if (!statement) throw new PgError('26000', `No statement found with name: ${name}`);
          this.out.msg('t', int16(0));
          this.out.msg('n');
          return;
        }
        const portal = this.portals.get(name);
        if (!portal) throw new PgError('34000', `No portal found with name: ${name}`);
        // The row shape depends on the data (sub-columns), so the statement runs here and
        // Execute sends what it produced.
        portal.result = await this.runner.run(portal.sql, portal.params, this.info);
        if (portal.result.columns) this.out.msg('T', rowDescription(portal.result.columns));
        else this.out.msg('n');
        return;
      }
      case 'E': {
        const name = r.cstring();
        const portal = this.portals.get(name);
        if (!portal) throw new PgError('34000', `No portal found with name: ${name}`);
        const result =
          portal.result ?? (await this.runner.run(portal.sql, portal.params, this.info));
        portal.result = null;
        if (result.tag === '') this.out.msg('I');
        else this.writeResult(result, false);
        return;
      }
      case 'C': {
        const kind = r.byte();
        const name = r.cstring();
        if (kind === 'S') this.prepared.delete(name);
        else this.portals.delete(name);
        this.out.msg('3');
        return;
      }
      default:
        throw new PgError('XX000', `unsupported message type ${type}`);
    }
  }
}

function asPgError(error: unknown): PgError {
  if (error instanceof PgError) return error;
  return new PgError('XX000', error instanceof Error ? error.message : String(error));
}
