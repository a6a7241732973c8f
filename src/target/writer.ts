// Writing folded batches to the target: multi-row upserts and deletes, patches resolved against
// stored rows, rows the target refuses isolated by splitting and dead-lettered, and the
// checkpoint written after the rows (in the same transaction where the dialect has them).
import { randomUUID } from 'node:crypto';
import { EJSON, type Document } from 'bson';
import { CompiledQuery, sql, type Kysely } from 'kysely';
import type { ChangeEvent } from '../convert/change.js';
import { applyPatch, type FoldedRow } from '../convert/fold.js';
import { isStoredObject, parseStoredJson, type StoredObject } from '../convert/stored.js';
import { rowJson } from '../convert/value.js';
import { RelayError, RowError } from '../errors.js';
import type { StreamPosition } from '../mongo/source.js';
import type { Dialect, ObjectPolicy, RowTyping } from './dialect.js';
import { MAX_PARAMETERS, quoteIdent, tableRef } from './sql.js';

/** Upper bound on the text one statement carries (JSON, oids, events), to keep memory small. */
const MAX_STATEMENT_BYTES = 16 * 1024 * 1024;
/** Stored rows read back at once to apply patches, unless WriterOptions.lookupBytes says. */
const LOOKUP_BYTES = 4 * 1024 * 1024;

export const CHECKPOINT_TABLE = 'relay_checkpoints';
export const DEAD_LETTER_TABLE = 'relay_dead_letters';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tables are named at run time
export type AnyDb = Kysely<any>;

export interface Checkpoint {
  /** Where the change stream resumes: after a resume token, or at an operation time. */
  position: StreamPosition | null;
  /** Snapshot progress while the initial copy runs; null once it is done. */
  snapshot: Document | null;
  /** Cluster time of the last written event. */
  eventTime: Date | null;
}

export interface DeadLetter {
  collection: string;
  oid: string | null;
  operation: string;
  events: ChangeEvent[];
  error: string;
}

export interface WriteResult {
  upserted: number;
  deleted: number;
  deadLetters: DeadLetter[];
}

export interface WriterOptions {
  schema: string;
  streamId: string;
  onError: 'dlq' | 'fail';
  objectPolicy: ObjectPolicy;
  tableFor(collection: string): string;
  /**
   * Most bytes (JSON text) of stored rows read back at once to apply update patches: the rows
   * patched from them are written before more are read (plus one lookup's overshoot). 4 MiB by
   * default.
   */
  lookupBytes?: number;
}

/**
 * An upsert carries its JSON text, built once for sizing statements and for sending, and the
 * document it was written from (its BSON types decide the sub-column types), decoded only when
 * read.
 */
type ResolvedChange =
  | { readonly kind: 'upsert'; readonly json: string; readonly doc: Record<string, unknown> }
  | { kind: 'delete' };
type ResolvedRow = Omit<FoldedRow, 'change'> & { change: ResolvedChange };

/** A statement of a plain (unfenced) attempt was refused for its data: write the batch carefully. */
class RowRefused extends Error {}

export class TargetWriter {
  private readonly ensured = new Set<string>();
  /** Which collection each table holds: two collections on one table would mix their rows. */
  private readonly owners = new Map<string, string>();
  private readonly typing: RowTyping;
  /**
   * Bytes of stored rows the last lookup read per key it named (a row not found counts 0): sizes
   * the next lookup. Null before any.
   */
  private storedKeyBytes: number | null = null;
  /** The placeholders of the largest upsert yet, and where each row's placeholders end. */
  private placeholderText = '';
  private readonly placeholderEnds: number[] = [];

  constructor(
    readonly db: AnyDb,
    readonly dialect: Dialect,
    readonly options: WriterOptions,
  ) {
    this.typing = dialect.rowTyping(options.objectPolicy);
  }

  private get schema(): string {
    return this.options.schema;
  }

  /** Creates the checkpoint and dead-letter tables, and the tables of `collections`. */
  async prepare(collections: string[]): Promise<void> {
    for (const statement of this.dialect.ddl(this.schema, null, this.options.objectPolicy)) {
      await this.execute(statement);
    }
    for (const collection of collections) await this.ensureTable(collection);
  }

  /** Creates a collection's table if missing; never alters an existing one. */
  async ensureTable(collection: string): Promise<void> {
    const table = this.options.tableFor(collection);
    const owner = this.owners.get(table);
    if (owner !== undefined && owner !== collection) {
      throw new RelayError(
        `collections "${owner}" and "${collection}" would both be written to table ${quoteIdent(this.schema)}.${quoteIdent(table)} (${this.dialect.name} table names cannot hold some characters of collection names; each becomes _): relay one of them on its own with --collection and --table`,
      );
    }
    this.owners.set(table, collection);
    if (this.ensured.has(table)) return;
    const statements = this.dialect.ddl(this.schema, table, this.options.objectPolicy);
    await this.execute(statements.at(-1)!);
    this.ensured.add(table);
  }

  private async execute(statement: string): Promise<void> {
    try {
      await sql.raw(statement).execute(this.db);
    } catch (error) {
      const { kind, message } = this.dialect.classifyError(error);
      if (kind === 'transient') throw error;
      throw new RelayError(
        `could not run "${statement
          .split('\n')
          .find((l) => !l.startsWith('--'))
          ?.trim()}": ${message}`,
        {
          cause: error,
        },
      );
    }
  }

  async readCheckpoint(): Promise<Checkpoint | null> {
    const row = await this.db
      .withSchema(this.schema)
      .selectFrom(CHECKPOINT_TABLE)
      .select(['position', 'snapshot', 'event_time'])
      .where('stream_id', '=', this.options.streamId)
      .executeTakeFirst();
    if (!row) return null;
    return {
      position: row.position ? EJSON.parse(row.position, { relaxed: false }) : null,
      snapshot: row.snapshot ? EJSON.parse(row.snapshot, { relaxed: false }) : null,
      eventTime: row.event_time ? new Date(row.event_time) : null,
    };
  }

  /**
   * Writes the rows, their dead letters (unless the caller keeps them: `dead-letters retry`) and
   * then the checkpoint. On a transactional dialect all
   * of it commits together; elsewhere a replay after a crash converges (idempotent writes).
   */
  async write(
    rows: FoldedRow[],
    checkpoint: Checkpoint | null,
    { storeDeadLetters = true } = {},
  ): Promise<WriteResult> {
    for (const collection of new Set(rows.map((r) => r.collection)))
      await this.ensureTable(collection);
    const attempt = async (careful: boolean) => {
      const run = async (db: AnyDb): Promise<WriteResult> => {
        const result: WriteResult = { upserted: 0, deleted: 0, deadLetters: [] };
        for await (const resolved of this.resolve(db, rows, result.deadLetters)) {
          await this.writeResolved(db, resolved, result, careful);
        }
        if (result.deadLetters.length > 0) {
          if (this.options.onError === 'fail') {
            const first = result.deadLetters[0]!;
            throw new RelayError(
              `the target rejected ${first.collection} document ${first.oid}: ${first.error} (stopping before the checkpoint, as --on-error fail asks)`,
            );
          }
          if (storeDeadLetters) await this.insertDeadLetters(db, result.deadLetters);
        }
        if (checkpoint) await this.saveCheckpoint(db, checkpoint);
        return result;
      };
      return this.dialect.transactional ? this.db.transaction().execute(run) : run(this.db);
    };
    // Without transactions every statement stands alone: isolate as we go. With them, first try
    // the batch plainly (fewest round trips); if the target refuses a row, the transaction is
    // rolled back and the batch is written again with each statement fenced by a savepoint.
    if (!this.dialect.transactional) return attempt(true);
    try {
      return await attempt(false);
    } catch (error) {
      if (!(error instanceof RowRefused)) throw error;
      return attempt(true);
    }
  }

  /** Writes resolved rows, upserts then deletes, table by table, in statements within bounds. */
  private async writeResolved(
    db: AnyDb,
    resolved: ResolvedRow[],
    result: WriteResult,
    careful: boolean,
  ): Promise<void> {
    for (const [table, group] of groupBy(resolved, (r) => this.options.tableFor(r.collection))) {
      const upserts = await this.typed(
        db,
        table,
        group.filter((r) => r.change.kind === 'upsert'),
        result.deadLetters,
      );
      const deletes = group.filter((r) => r.change.kind === 'delete');
      const json = (r: ResolvedRow) => (r.change as { json: string }).json.length;
      for (const chunk of statementChunks(upserts, this.dialect.maxRowsPerInsert, json)) {
        result.upserted += await this.isolate(
          db,
          table,
          chunk,
          'upsert',
          result.deadLetters,
          careful,
        );
      }
      const oid = (r: ResolvedRow) => r.oid.length;
      for (const chunk of statementChunks(deletes, this.dialect.maxKeysPerStatement, oid)) {
        result.deleted += await this.isolate(
          db,
          table,
          chunk,
          'delete',
          result.deadLetters,
          careful,
        );
      }
    }
  }

  /**
   * The rows as upserts and deletes, in groups to write one after the other: first the rows that
   * carry what to write, then the patches, applied to their stored rows, which are read back in
   * groups of about `lookupBytes` (a batch of small patches can name rows of megabytes each).
   * Rejects become dead letters.
   */
  private async *resolve(
    db: AnyDb,
    rows: FoldedRow[],
    dead: DeadLetter[],
  ): AsyncGenerator<ResolvedRow[]> {
    const resolved: ResolvedRow[] = [];
    for (const row of rows) {
      const change = row.change;
      if (change.kind === 'delete' || change.kind === 'upsert') resolved.push(row as ResolvedRow);
      else if (change.kind === 'reject') dead.push(this.deadLetter(row, change.error));
    }
    if (resolved.length > 0) yield resolved;
    const limit = this.options.lookupBytes ?? LOOKUP_BYTES;
    const patched = rows.filter((r) => r.change.kind === 'patch');
    for (const [table, group] of groupBy(patched, (r) => this.options.tableFor(r.collection))) {
      let patches: ResolvedRow[] = [];
      let bytes = 0;
      for (let next = 0; next < group.length;) {
        // As many keys as rows of the mean size seen fill the room left (rounded up); one
        // before any row was read.
        const mean = this.storedKeyBytes;
        const keys =
          mean === null
            ? 1
            : Math.min(this.dialect.maxKeysPerStatement, Math.ceil((limit - bytes) / mean));
        const chunk = group.slice(next, next + keys);
        next += chunk.length;
        const found = await this.lookup(db, table, chunk);
        let read = 0;
        for (const { bytes: size } of found.values()) read += size;
        this.storedKeyBytes = read / chunk.length;
        bytes += read;
        for (const row of chunk) this.applyPatches(row, found.get(row.oid)?.data, patches, dead);
        if (bytes >= limit) {
          yield patches;
          patches = [];
          bytes = 0;
        }
      }
      if (patches.length > 0) yield patches;
    }
  }

  /** The stored rows of `rows` in `table` (primary-key lookup), with the size of their text. */
  private async lookup(
    db: AnyDb,
    table: string,
    rows: FoldedRow[],
  ): Promise<Map<string, { data: StoredObject; bytes: number }>> {
    const { rows: result } = await sql<{ oid: string; data: unknown }>`
      SELECT "oid", "data" FROM ${tableRef(this.schema, table)}
      WHERE ${this.dialect.oidIn(rows.map((r) => r.oid))}`.execute(db);
    const found = new Map<string, { data: StoredObject; bytes: number }>();
    for (const row of result) {
      const data = parseStoredJson(row.data);
      const bytes = typeof row.data === 'string' ? row.data.length : 0;
      if (isStoredObject(data)) found.set(row.oid, { data, bytes });
    }
    return found;
  }

  /** A patch row applied to its stored row, as an upsert; or its dead letter. */
  private applyPatches(
    row: FoldedRow,
    base: StoredObject | undefined,
    resolved: ResolvedRow[],
    dead: DeadLetter[],
  ): void {
    if (row.change.kind !== 'patch') return;
    if (!base) {
      dead.push(
        this.deadLetter(
          row,
          'update without a full document for a row the target does not have; re-run with --snapshot initial or a full-document mode',
        ),
      );
      return;
    }
    try {
      // The stored row is written back from its own number texts: `10.0` and 64-bit
      // integers stay exactly as the target returned them.
      const keys = this.dialect.objectKey;
      const data = row.change.patches.reduce((doc, patch) => applyPatch(doc, patch, keys), base);
      resolved.push({ ...row, change: { kind: 'upsert', json: rowJson(data, keys), doc: data } });
    } catch (error) {
      if (!(error instanceof RowError)) throw error;
      dead.push(this.deadLetter(row, error.message));
    }
  }

  /**
   * The upserts the target can store exactly, once it is prepared for them (CrateDB: their new
   * sub-columns declared); the others become dead letters with the reason.
   */
  private async typed(
    db: AnyDb,
    table: string,
    upserts: ResolvedRow[],
    dead: DeadLetter[],
  ): Promise<ResolvedRow[]> {
    const refused = await this.typing.prepare(
      db,
      this.schema,
      table,
      upserts as { oid: string; change: { doc: Record<string, unknown> } }[],
    );
    if (refused.size === 0) return upserts;
    return upserts.filter((r) => {
      const reason = refused.get(r.oid);
      if (reason !== undefined) dead.push(this.deadLetter(r, reason));
      return reason === undefined;
    });
  }

  /**
   * Applies `rows` with one statement and returns how many the target wrote. A statement the
   * target refuses for its data is split in halves until the refused rows stand alone, and those
   * are dead-lettered with the target's error. An upsert that succeeds but names fewer rows than
   * it was given (CrateDB skips failing rows of a multi-row INSERT without an error) writes each
   * missing row alone, to get the reason; a row still not written then is dead-lettered too.
   */
  private async isolate(
    db: AnyDb,
    table: string,
    rows: ResolvedRow[],
    kind: 'upsert' | 'delete',
    dead: DeadLetter[],
    careful: boolean,
  ): Promise<number> {
    if (rows.length === 0) return 0;
    let written: Set<string> | null;
    try {
      written = await this.guarded(db, careful, () =>
        kind === 'upsert' ? this.upsert(db, table, rows) : this.delete(db, table, rows),
      );
    } catch (error) {
      const { kind: errorKind, message } = this.dialect.classifyError(error);
      if (errorKind === 'transient') throw error;
      if (errorKind === 'fatal') {
        throw new RelayError(
          `${kind} of ${rows.length} rows into ${quoteIdent(this.schema)}.${quoteIdent(table)} failed: ${message}`,
          { cause: error },
        );
      }
      if (!careful) throw new RowRefused();
      if (rows.length === 1) {
        dead.push(this.deadLetter(rows[0]!, message));
        return 0;
      }
      const middle = rows.length >> 1;
      return (
        (await this.isolate(db, table, rows.slice(0, middle), kind, dead, careful)) +
        (await this.isolate(db, table, rows.slice(middle), kind, dead, careful))
      );
    }
    // A delete by primary key reports each row's error; a row already gone is what was asked.
    if (written === null) return rows.length;
    const missing = rows.filter((r) => !written.has(r.oid));
    if (missing.length === 0) return rows.length;
    if (!careful) throw new RowRefused();
    if (rows.length === 1) {
      dead.push(this.deadLetter(rows[0]!, this.dialect.unwrittenRow));
      return 0;
    }
    let count = rows.length - missing.length;
    for (const row of missing) count += await this.isolate(db, table, [row], kind, dead, careful);
    return count;
  }

  /** In a transaction, a failed statement must not abort the others: fence it with a savepoint. */
  private async guarded<T>(db: AnyDb, careful: boolean, statement: () => Promise<T>): Promise<T> {
    if (!careful || !this.dialect.transactional) return statement();
    await sql`SAVEPOINT relay_rows`.execute(db);
    let result: T;
    try {
      result = await statement();
    } catch (error) {
      await sql`ROLLBACK TO SAVEPOINT relay_rows`.execute(db);
      throw error;
    }
    await sql`RELEASE SAVEPOINT relay_rows`.execute(db);
    return result;
  }

  /**
   * Upserts `rows`; returns the oids the target says it wrote (`RETURNING`). The statement is
   * written as text with its parameters: building it as a query tree of a few nodes per row cost
   * more than the rest of the write.
   */
  private async upsert(db: AnyDb, table: string, rows: ResolvedRow[]): Promise<Set<string>> {
    const parameters: string[] = new Array(rows.length * 2);
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      parameters[2 * i] = row.oid;
      parameters[2 * i + 1] = (row.change as { json: string }).json;
    }
    const { rows: written } = await db.executeQuery<{ oid: string }>(
      CompiledQuery.raw(
        `INSERT INTO ${quoteIdent(this.schema)}.${quoteIdent(table)} ("oid", "data") VALUES ${this.placeholders(rows.length)} ON CONFLICT ("oid") DO UPDATE SET "data" = excluded."data" RETURNING "oid"`,
        parameters,
      ),
    );
    return new Set(written.map((r) => r.oid));
  }

  /**
   * `($1, $2::jsonb), ($3, $4::jsonb), …` for `rows` rows: a prefix of the text for the most rows
   * an upsert had yet, which is kept, so a batch does not spell each row's placeholders again.
   */
  private placeholders(rows: number): string {
    while (this.placeholderEnds.length < rows) {
      const i = this.placeholderEnds.length;
      const data = this.dialect.dataParameter(`$${2 * i + 2}`);
      this.placeholderText += `${i > 0 ? ', ' : ''}($${2 * i + 1}, ${data})`;
      this.placeholderEnds.push(this.placeholderText.length);
    }
    return this.placeholderText.slice(0, this.placeholderEnds[rows - 1]);
  }

  private async delete(db: AnyDb, table: string, rows: ResolvedRow[]): Promise<null> {
    await sql`DELETE FROM ${tableRef(this.schema, table)} WHERE ${this.dialect.oidIn(
      rows.map((r) => r.oid),
    )}`.execute(db);
    return null;
  }

  private deadLetter(row: Omit<FoldedRow, 'change'>, error: string): DeadLetter {
    return {
      collection: row.collection,
      oid: row.oid,
      operation: String(row.events.at(-1)?.operationType ?? 'unknown'),
      events: row.events,
      error,
    };
  }

  /**
   * Stores dead letters. Each must be stored before the checkpoint moves past its events: one
   * the target skips (a multi-row INSERT's row count) is written again alone, and one it still
   * does not store stops the write, before the checkpoint.
   */
  private async insertDeadLetters(db: AnyDb, letters: DeadLetter[]): Promise<void> {
    const now = new Date();
    const rows = letters.map((letter) => ({
      id: randomUUID(),
      stream_id: this.options.streamId,
      ns: namespaceOf(letter),
      oid: letter.oid,
      operation: letter.operation,
      event: EJSON.stringify(
        letter.events.map((e) => e.toDocument()),
        { relaxed: false },
      ),
      error: letter.error,
      created_at: now,
    }));
    const insert = async (chunk: typeof rows) =>
      new Set(
        (
          await db
            .withSchema(this.schema)
            .insertInto(DEAD_LETTER_TABLE)
            .values(chunk)
            .returning('id')
            .execute()
        ).map((r) => r.id as string),
      );
    const perStatement = Math.min(this.dialect.maxRowsPerInsert, Math.floor(MAX_PARAMETERS / 8));
    // A dead letter keeps its events whole: large documents make few letters per statement.
    const text = (r: (typeof rows)[number]) => r.event.length + r.error.length;
    for (const chunk of statementChunks(rows, perStatement, text)) {
      const stored = await insert(chunk);
      for (const row of chunk.filter((r) => !stored.has(r.id))) {
        if ((await insert([row])).has(row.id)) continue;
        throw new RelayError(
          `the dead letter of ${row.ns} document ${row.oid} (${row.error}) could not be stored in ${quoteIdent(this.schema)}.${DEAD_LETTER_TABLE}: the target wrote no row and reported no error; stopping before the checkpoint so that its events are read again`,
        );
      }
    }
  }

  async saveCheckpoint(db: AnyDb, checkpoint: Checkpoint): Promise<void> {
    const values = {
      stream_id: this.options.streamId,
      position: checkpoint.position
        ? EJSON.stringify(checkpoint.position, { relaxed: false })
        : null,
      snapshot: checkpoint.snapshot
        ? EJSON.stringify(checkpoint.snapshot, { relaxed: false })
        : null,
      event_time: checkpoint.eventTime,
      updated_at: new Date(),
    };
    const result = await db
      .withSchema(this.schema)
      .insertInto(CHECKPOINT_TABLE)
      .values(values)
      .onConflict((oc) =>
        oc.column('stream_id').doUpdateSet({
          position: sql.ref('excluded.position'),
          snapshot: sql.ref('excluded.snapshot'),
          event_time: sql.ref('excluded.event_time'),
          updated_at: sql.ref('excluded.updated_at'),
        }),
      )
      .executeTakeFirst();
    if (result.numInsertedOrUpdatedRows !== 1n) {
      throw new RelayError(
        `the checkpoint of ${this.options.streamId} was not stored in ${quoteIdent(this.schema)}.${CHECKPOINT_TABLE} (row count ${String(result.numInsertedOrUpdatedRows ?? 0)}, not 1) and the target reported no error; stopping so that the relay never resumes from an older position unknowingly`,
      );
    }
  }

  /** `--on-drop truncate|drop` for a dropped or renamed collection. */
  async clear(collection: string, mode: 'truncate' | 'drop'): Promise<void> {
    const table = this.options.tableFor(collection);
    if (mode === 'drop') {
      await sql`DROP TABLE IF EXISTS ${tableRef(this.schema, table)}`.execute(this.db);
      this.ensured.delete(table);
      this.typing.forget(this.schema, table);
    } else {
      await this.ensureTable(collection);
      // CrateDB deletes without a key from the last refreshed state: rows written since would stay.
      await this.dialect.refresh(this.db, this.schema, table);
      await sql`DELETE FROM ${tableRef(this.schema, table)}`.execute(this.db);
    }
  }
}

/** `db.collection` of the event a dead letter holds. */
function namespaceOf(letter: DeadLetter): string {
  const ns = letter.events.at(-1)?.ns;
  return ns?.db ? `${ns.db}.${ns.coll ?? letter.collection}` : letter.collection;
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

export function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Statements within a row limit and MAX_STATEMENT_BYTES of text (`textOf` a row: JSON, oid,
 * events); a row larger than that is a statement of its own.
 */
function statementChunks<T>(rows: T[], maxRows: number, textOf: (row: T) => number): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const row of rows) {
    const size = textOf(row);
    if (current.length > 0 && (current.length >= maxRows || bytes + size > MAX_STATEMENT_BYTES)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(row);
    bytes += size;
  }
  if (current.length) out.push(current);
  return out;
}
