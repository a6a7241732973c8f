// `relay dead-letters list|retry|purge`: look at the rows the target refused, re-apply them once
// their cause is fixed (through the same convert -> fold -> write path), or remove them.
import { EJSON, type Document } from 'bson';
import { sql } from 'kysely';
import type { TargetSettings } from '../config.js';
import { convertEvent, type RowEvent } from '../convert/event.js';
import { foldBatch } from '../convert/fold.js';
import { ConfigError } from '../errors.js';
import { GarbagePacer } from '../memory.js';
import { connectTarget, type TargetConnection } from '../target/connect.js';
import { DEAD_LETTER_TABLE, TargetWriter, type AnyDb } from '../target/writer.js';

export interface DeadLetterSettings extends TargetSettings {
  action: 'list' | 'retry' | 'purge';
  streamId: string | null;
  ns: string | null;
  ids: string[];
  all: boolean;
  /** At most this many rows (list defaults to 100; retry and purge to all). */
  limit: number | null;
  json: boolean;
  /** Bytes of dead letters (event and error text) read at once; a larger one is read alone. */
  batchBytes: number;
}

export interface DeadLetterRow {
  id: string;
  stream_id: string;
  ns: string;
  oid: string | null;
  operation: string;
  error: string;
  event: string;
  created_at: Date;
}

/** Keys of the selected dead letters read at once, to cut them into groups of `batchBytes`. */
const KEYS_PER_PAGE = 1000;

interface LetterKey {
  id: string;
  created_at: Date;
  bytes: number;
}

function selection(db: AnyDb, schema: string, settings: DeadLetterSettings) {
  let query = db.withSchema(schema).selectFrom(DEAD_LETTER_TABLE);
  if (settings.streamId) query = query.where('stream_id', '=', settings.streamId);
  if (settings.ns) query = query.where('ns', '=', settings.ns);
  if (settings.ids.length) query = query.where('id', 'in', settings.ids);
  return query;
}

/**
 * Keys of the selected dead letters, oldest first, with the bytes of their stored text, a page at
 * a time: each page after the last key of the one before, so rows removed meanwhile (a retry
 * applied them, a purge) never make it skip one.
 */
async function* keyPages(
  db: AnyDb,
  schema: string,
  settings: DeadLetterSettings,
): AsyncGenerator<LetterKey[]> {
  let left = settings.limit ?? Infinity;
  let after: LetterKey | null = null;
  while (left > 0) {
    let page = selection(db, schema, settings).select([
      'id',
      'created_at',
      sql<number>`octet_length("event") + octet_length("error")`.as('bytes'),
    ]);
    if (after) {
      // The driver sends a Date as text of no declared type: cast, it compares as a timestamp.
      const at = sql`CAST(${after.created_at} AS TIMESTAMP WITH TIME ZONE)`;
      const id = after.id;
      page = page.where((eb) =>
        eb.or([eb('created_at', '>', at), eb.and([eb('created_at', '=', at), eb('id', '>', id)])]),
      );
    }
    const keys = (await page
      .orderBy('created_at')
      .orderBy('id')
      .limit(Math.min(KEYS_PER_PAGE, left))
      .execute()) as LetterKey[];
    if (keys.length === 0) return;
    left -= keys.length;
    after = keys.at(-1)!;
    yield keys;
  }
}

/**
 * The selected dead letters, oldest first, in groups of at most `batchBytes` of stored text (a
 * larger one alone), each read once the one before has been handled.
 */
export async function* letterGroups(
  db: AnyDb,
  schema: string,
  settings: DeadLetterSettings,
): AsyncGenerator<DeadLetterRow[]> {
  const garbage = new GarbagePacer(settings.batchBytes);
  for await (const keys of keyPages(db, schema, settings)) {
    let group: LetterKey[] = [];
    let bytes = 0;
    for (const key of [...keys, null]) {
      const size = key === null ? 0 : Number(key.bytes);
      if (group.length > 0 && (key === null || bytes + size > settings.batchBytes)) {
        yield await lettersOf(db, schema, group);
        garbage.done(bytes);
        group = [];
        bytes = 0;
      }
      if (key === null) break;
      group.push(key);
      bytes += size;
    }
  }
}

/** The letters of `keys`, in their order. */
async function lettersOf(db: AnyDb, schema: string, keys: LetterKey[]): Promise<DeadLetterRow[]> {
  const rows = (await db
    .withSchema(schema)
    .selectFrom(DEAD_LETTER_TABLE)
    .selectAll()
    .where(
      'id',
      'in',
      keys.map((k) => k.id),
    )
    .execute()) as DeadLetterRow[];
  const byId = new Map(rows.map((row) => [row.id, row]));
  // One removed since its key was read (a purge or retry alongside) is left out.
  return keys.flatMap((k) => byId.get(k.id) ?? []);
}

async function retry(
  target: TargetConnection,
  schema: string,
  letters: DeadLetterRow[],
  settings: DeadLetterSettings,
  result: { applied: number; failed: { id: string; error: string }[] },
) {
  for (const letter of letters) {
    const writer = new TargetWriter(target.db, target.dialect, {
      schema,
      streamId: letter.stream_id,
      onError: 'dlq',
      objectPolicy: 'dynamic',
      tableFor: (collection) => settings.table ?? target.dialect.tableName(collection),
    });
    const events = EJSON.parse(letter.event, { relaxed: false }) as Document[];
    const rows = events
      .map((event) => convertEvent(event, target.dialect.objectKey))
      .filter((c): c is RowEvent => c.type === 'row');
    const written = await writer.write(foldBatch(rows), null, { storeDeadLetters: false });
    const refused = written.deadLetters[0];
    const query = target.db.withSchema(schema);
    if (refused) {
      result.failed.push({ id: letter.id, error: refused.error });
      await query
        .updateTable(DEAD_LETTER_TABLE)
        .set({ error: refused.error })
        .where('id', '=', letter.id)
        .execute();
    } else {
      result.applied++;
      await query.deleteFrom(DEAD_LETTER_TABLE).where('id', '=', letter.id).execute();
    }
  }
}

export async function deadLetters(
  settings: DeadLetterSettings,
  out: NodeJS.WritableStream = process.stdout,
) {
  if (
    settings.action === 'purge' &&
    !settings.all &&
    !settings.streamId &&
    !settings.ns &&
    !settings.ids.length
  ) {
    throw new ConfigError(
      'dead-letters purge removes rows for good: name them with --stream-id, --ns or --id, or give --all',
    );
  }
  const target = await connectTarget(settings.targetUrl, settings.dialect);
  try {
    const schema = settings.schema ?? target.dialect.defaultSchema;
    await target.dialect.refresh(target.db, schema, DEAD_LETTER_TABLE).catch(() => {
      throw new ConfigError(
        `no ${DEAD_LETTER_TABLE} table in schema ${schema} of this target; check --schema`,
      );
    });
    switch (settings.action) {
      case 'list': {
        let count = 0;
        for await (const letters of letterGroups(target.db, schema, settings)) {
          count += letters.length;
          for (const l of letters) {
            out.write(
              settings.json
                ? `${JSON.stringify({ ...l, event: EJSON.parse(l.event, { relaxed: true }) })}\n`
                : `${new Date(l.created_at).toISOString()} ${l.id} ${l.stream_id} ${l.ns} ${l.oid} ${l.operation}: ${l.error}\n`,
            );
          }
        }
        if (!settings.json)
          out.write(
            `${count} dead letters${count === settings.limit ? ` (the first ${settings.limit}; --limit for more)` : ''}\n`,
          );
        return { count };
      }
      case 'retry': {
        let count = 0;
        const result = { applied: 0, failed: [] as { id: string; error: string }[] };
        for await (const letters of letterGroups(target.db, schema, settings)) {
          count += letters.length;
          await retry(target, schema, letters, settings, result);
        }
        out.write(
          settings.json
            ? `${JSON.stringify(result)}\n`
            : `re-applied ${result.applied} of ${count} dead letters${result.failed.map((f) => `\n  still refused ${f.id}: ${f.error}`).join('')}\n`,
        );
        return { count, ...result };
      }
      case 'purge': {
        let purged = 0;
        for await (const keys of keyPages(target.db, schema, settings)) {
          await target.db
            .withSchema(schema)
            .deleteFrom(DEAD_LETTER_TABLE)
            .where(
              'id',
              'in',
              keys.map((k) => k.id),
            )
            .execute();
          purged += keys.length;
        }
        out.write(
          settings.json ? `${JSON.stringify({ purged })}\n` : `purged ${purged} dead letters\n`,
        );
        return { count: purged };
      }
    }
  } finally {
    await target.close();
  }
}
