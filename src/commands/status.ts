// `relay status`: what the target says about each stream: where its checkpoint stands (the time of
// its resume position and of the last written event, and how old it is), its dead letters, and
// the row counts of the relay's tables.
import { EJSON, type Document } from 'bson';
import { sql } from 'kysely';
import type { TargetSettings } from '../config.js';
import { ConfigError } from '../errors.js';
import { connectTarget } from '../target/connect.js';
import { tableExists } from '../target/sql.js';
import { CHECKPOINT_TABLE, DEAD_LETTER_TABLE, type AnyDb } from '../target/writer.js';

export interface StreamStatus {
  streamId: string;
  /** Cluster time of the resume position (ISO), read from the resume token or operation time. */
  positionTime: string | null;
  lastEventTime: string | null;
  checkpointedAt: string;
  checkpointAgeSeconds: number;
  snapshotPending: boolean;
  deadLetters: number;
}

export interface StatusReport {
  schema: string;
  streams: StreamStatus[];
  deadLetters: { streamId: string; ns: string; count: number }[];
  tables: { table: string; rows: number }[];
}

/** A resume token's `_data` begins with 0x82 and the event's cluster time (seconds, increment). */
export function positionTime(position: Document | null): string | null {
  if (!position) return null;
  const data = position.startAfter?._data ?? position.resumeAfter?._data;
  if (typeof data === 'string' && /^82[0-9a-f]{8}/i.test(data)) {
    return new Date(parseInt(data.slice(2, 10), 16) * 1000).toISOString();
  }
  const time = position.startAtOperationTime as { t?: number } | undefined;
  return typeof time?.t === 'number' ? new Date(time.t * 1000).toISOString() : null;
}

export async function readStatus(
  db: AnyDb,
  schema: string,
  refresh: (table: string) => Promise<void>,
): Promise<StatusReport> {
  if (!(await tableExists(db, schema, CHECKPOINT_TABLE))) {
    throw new ConfigError(
      `no relay has run against schema ${schema} of this target (no ${CHECKPOINT_TABLE} table); check --schema`,
    );
  }
  await refresh(CHECKPOINT_TABLE);
  await refresh(DEAD_LETTER_TABLE);
  const checkpoints = await db
    .withSchema(schema)
    .selectFrom(CHECKPOINT_TABLE)
    .selectAll()
    .orderBy('stream_id')
    .execute();
  const letters = await db
    .withSchema(schema)
    .selectFrom(DEAD_LETTER_TABLE)
    .select(['stream_id', 'ns', (eb) => eb.fn.countAll<number>().as('count')])
    .groupBy(['stream_id', 'ns'])
    .orderBy('stream_id')
    .orderBy('ns')
    .execute();
  // The relay's data tables are those with exactly its two columns, oid and data.
  const { rows: candidates } = await sql<{ table_name: string }>`
    SELECT table_name FROM information_schema.columns
    WHERE table_schema = ${schema} AND column_name IN ('oid', 'data')
    GROUP BY table_name HAVING count(*) = 2 ORDER BY table_name`.execute(db);
  const tables = [];
  for (const { table_name: table } of candidates) {
    await refresh(table);
    const row = await db
      .withSchema(schema)
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst();
    tables.push({ table, rows: Number(row?.n ?? 0) });
  }
  const now = Date.now();
  return {
    schema,
    streams: checkpoints.map((c) => {
      const updated = new Date(c.updated_at);
      return {
        streamId: c.stream_id,
        positionTime: positionTime(c.position ? EJSON.parse(c.position, { relaxed: false }) : null),
        lastEventTime: c.event_time ? new Date(c.event_time).toISOString() : null,
        checkpointedAt: updated.toISOString(),
        checkpointAgeSeconds: Math.round((now - updated.getTime()) / 1000),
        snapshotPending: c.snapshot !== null,
        deadLetters: letters
          .filter((l) => l.stream_id === c.stream_id)
          .reduce((sum, l) => sum + Number(l.count), 0),
      };
    }),
    deadLetters: letters.map((l) => ({ streamId: l.stream_id, ns: l.ns, count: Number(l.count) })),
    tables,
  };
}

export function statusText(report: StatusReport): string {
  const lines = [`schema ${report.schema}:`];
  if (report.streams.length === 0) lines.push('  no streams have checkpointed yet');
  for (const s of report.streams) {
    lines.push(
      `  stream ${s.streamId}: ${s.snapshotPending ? 'snapshot in progress, ' : ''}position ${s.positionTime ?? '-'}, ` +
        `last event ${s.lastEventTime ?? '-'}, checkpoint ${s.checkpointAgeSeconds}s old, dead letters ${s.deadLetters}`,
    );
  }
  for (const d of report.deadLetters)
    lines.push(`  dead letters of ${d.streamId} from ${d.ns}: ${d.count}`);
  for (const t of report.tables) lines.push(`  table ${t.table}: ${t.rows} rows`);
  return lines.join('\n');
}

export async function status(
  settings: TargetSettings & { json: boolean },
  out: NodeJS.WritableStream = process.stdout,
): Promise<StatusReport> {
  const target = await connectTarget(settings.targetUrl, settings.dialect);
  try {
    const schema = settings.schema ?? target.dialect.defaultSchema;
    const report = await readStatus(target.db, schema, (table) =>
      target.dialect.refresh(target.db, schema, table),
    );
    out.write(settings.json ? `${JSON.stringify(report)}\n` : `${statusText(report)}\n`);
    return report;
  } finally {
    await target.close();
  }
}
