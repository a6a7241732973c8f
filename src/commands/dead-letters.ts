// `relay dead-letters list|retry|purge`: look at the rows the target refused, re-apply them once
// their cause is fixed (through the same convert -> fold -> write path), or remove them.
import { EJSON, type Document } from 'bson';
import type { TargetSettings } from '../config.js';
import { convertEvent, type RowEvent } from '../convert/event.js';
import { foldBatch } from '../convert/fold.js';
import { ConfigError } from '../errors.js';
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

function selection(db: AnyDb, schema: string, settings: DeadLetterSettings) {
  let query = db.withSchema(schema).selectFrom(DEAD_LETTER_TABLE).selectAll();
  if (settings.streamId) query = query.where('stream_id', '=', settings.streamId);
  if (settings.ns) query = query.where('ns', '=', settings.ns);
  if (settings.ids.length) query = query.where('id', 'in', settings.ids);
  return query.orderBy('created_at');
}

async function retry(
  target: TargetConnection,
  schema: string,
  letters: DeadLetterRow[],
  settings: DeadLetterSettings,
) {
  let applied = 0;
  const failed: { id: string; error: string }[] = [];
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
    const result = await writer.write(foldBatch(rows), null, { storeDeadLetters: false });
    const refused = result.deadLetters[0];
    const query = target.db.withSchema(schema);
    if (refused) {
      failed.push({ id: letter.id, error: refused.error });
      await query
        .updateTable(DEAD_LETTER_TABLE)
        .set({ error: refused.error })
        .where('id', '=', letter.id)
        .execute();
    } else {
      applied++;
      await query.deleteFrom(DEAD_LETTER_TABLE).where('id', '=', letter.id).execute();
    }
  }
  return { applied, failed };
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
    const query = selection(target.db, schema, settings);
    const letters = (await (
      settings.limit === null ? query : query.limit(settings.limit)
    ).execute()) as DeadLetterRow[];
    switch (settings.action) {
      case 'list': {
        for (const l of letters) {
          out.write(
            settings.json
              ? `${JSON.stringify({ ...l, event: EJSON.parse(l.event, { relaxed: true }) })}\n`
              : `${new Date(l.created_at).toISOString()} ${l.id} ${l.stream_id} ${l.ns} ${l.oid} ${l.operation}: ${l.error}\n`,
          );
        }
        if (!settings.json)
          out.write(
            `${letters.length} dead letters${letters.length === settings.limit ? ` (the first ${settings.limit}; --limit for more)` : ''}\n`,
          );
        return { count: letters.length };
      }
      case 'retry': {
        const result = await retry(target, schema, letters, settings);
        out.write(
          settings.json
            ? `${JSON.stringify(result)}\n`
            : `re-applied ${result.applied} of ${letters.length} dead letters${result.failed.map((f) => `\n  still refused ${f.id}: ${f.error}`).join('')}\n`,
        );
        return { count: letters.length, ...result };
      }
      case 'purge': {
        const ids = letters.map((l) => l.id);
        for (let i = 0; i < ids.length; i += 1000) {
          await target.db
            .withSchema(schema)
            .deleteFrom(DEAD_LETTER_TABLE)
            .where('id', 'in', ids.slice(i, i + 1000))
            .execute();
        }
        out.write(
          settings.json
            ? `${JSON.stringify({ purged: ids.length })}\n`
            : `purged ${ids.length} dead letters\n`,
        );
        return { count: ids.length };
      }
    }
  } finally {
    await target.close();
  }
}
