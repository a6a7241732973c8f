// `relay tail`: print change events as they happen. `--format ejson` lines are canonical
// Extended JSON, exactly what `relay replay` reads.
import { EJSON, type Document } from 'bson';
import type { TailSettings } from '../config.js';
import { oidOf } from '../convert/value.js';
import { connectMongo } from '../mongo/connect.js';
import { onStopSignal } from '../signals.js';
import { ChangeSource, currentPosition } from '../mongo/source.js';

export function formatPretty(event: Document): string {
  const time = event.wallTime instanceof Date ? event.wallTime.toISOString() : '';
  const ns = [event.ns?.db, event.ns?.coll].filter(Boolean).join('.');
  const oid = event.documentKey ? oidOf(event.documentKey._id) : '';
  let detail = '';
  if (event.operationType === 'update' && event.updateDescription) {
    const d = event.updateDescription;
    const parts = [
      ...Object.keys(d.updatedFields ?? {}).map((k) => `set ${k}`),
      ...(d.removedFields ?? []).map((k: string) => `unset ${k}`),
      ...(d.truncatedArrays ?? []).map(
        (t: { field: string; newSize: number }) => `truncate ${t.field} to ${t.newSize}`,
      ),
    ];
    detail = parts.join(', ');
  } else if (event.operationType === 'rename') {
    detail = `to ${event.to?.db}.${event.to?.coll}`;
  }
  return [time, event.operationType, ns, oid, detail].filter(Boolean).join(' ');
}

export async function tail(
  settings: TailSettings,
  out: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  const client = await connectMongo(settings.mongodbUrl, { requireChangeStreams: true });
  const filter = settings.operations
    ? [{ $match: { operationType: { $in: settings.operations } } }, ...settings.filter]
    : settings.filter;
  const source = new ChangeSource(client, {
    database: settings.database,
    collections: settings.collections,
    fullDocument: settings.fullDocument,
    filter,
    batchSize: 100,
    // Events are printed as they come; a batch is only how many are held before printing.
    batchBytes: 16 * 1024 * 1024,
    batchWaitMs: 200,
  });
  const controller = new AbortController();
  const stop = () => controller.abort();
  const releaseSignals = onStopSignal(stop);
  // A reader that went away (`relay tail | head`) ends the command quietly.
  out.on('error', stop);
  let printed = 0;
  try {
    source.open(await currentPosition(client, source.options));
    while (!controller.signal.aborted) {
      const { events } = await source.next();
      for (const event of events) {
        const document = event.toDocument();
        const line =
          settings.format === 'ejson'
            ? EJSON.stringify(document, { relaxed: false })
            : formatPretty(document);
        out.write(`${line}\n`);
        printed++;
        if (settings.limit !== null && printed >= settings.limit) return;
      }
    }
  } finally {
    releaseSignals();
    await source.close();
    await client.close().catch(() => {});
  }
}
