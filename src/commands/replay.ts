// `relay replay FILE`: apply change events from canonical Extended JSON lines (what `relay tail`
// prints) to a target, through the same convert -> fold -> write path as the relay.
import fs from 'node:fs';
import { BSON, EJSON, type Document } from 'bson';
import type { ReplaySettings } from '../config.js';
import { convertEvent, type RowEvent } from '../convert/event.js';
import { foldBatch } from '../convert/fold.js';
import { ConfigError, errorMessage } from '../errors.js';
import { createLogger } from '../log.js';
import { GarbagePacer } from '../memory.js';
import {
  isLeftOutWrite,
  leftOutBecause,
  ROW_OPERATIONS,
  temporaryOrigin,
} from '../mongo/namespaces.js';
import { connectTarget } from '../target/connect.js';
import { TargetWriter } from '../target/writer.js';

/** A change event as a line holds it: a document with an `operationType` at least. */
type EventDocument = Document & { operationType: string };

/**
 * Parses one line into change events (a line is one event, or an array of events as the
 * `event` column of relay_dead_letters holds), or says in one sentence why it is not.
 */
export function parseEventLine(line: string, lineNumber: number, file: string): EventDocument[] {
  let parsed: unknown;
  try {
    parsed = EJSON.parse(line, { relaxed: false });
  } catch (error) {
    throw new ConfigError(
      `${file} line ${lineNumber} is not valid Extended JSON: ${errorMessage(error)}`,
    );
  }
  const events = Array.isArray(parsed) ? parsed : [parsed];
  if (events.length === 0) throw new ConfigError(`${file} line ${lineNumber} is an empty array`);
  return events.map((event) => checkEvent(event, `${file} line ${lineNumber}`));
}

function checkEvent(event: unknown, where: string): EventDocument {
  const e = event as Document | null;
  if (!e || typeof e !== 'object' || Array.isArray(e) || typeof e.operationType !== 'string') {
    throw new ConfigError(`${where} is not a change event (no operationType)`);
  }
  if (ROW_OPERATIONS.has(e.operationType)) {
    if (typeof e.ns?.coll !== 'string' || !e.documentKey || !('_id' in e.documentKey)) {
      throw new ConfigError(
        `${where}: a ${e.operationType} event needs ns.coll and documentKey._id`,
      );
    }
  }
  return e as EventDocument;
}

/**
 * The lines of `input` (without their LF or CRLF), read as they are asked for: a slow consumer
 * holds one line and one chunk of the input, however long the lines (readline's iterator would
 * buffer up to 1024 lines, gigabytes when each holds a large document).
 */
export async function* readLines(input: NodeJS.ReadableStream): AsyncGenerator<string> {
  input.setEncoding('utf8');
  let parts: string[] = [];
  for await (const chunk of input) {
    let text = chunk as string;
    for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n')) {
      parts.push(text.slice(0, at));
      const line = parts.join('');
      parts = [];
      text = text.slice(at + 1);
      yield line.endsWith('\r') ? line.slice(0, -1) : line;
    }
    if (text) parts.push(text);
  }
  if (parts.length > 0) yield parts.join('');
}

export async function replay(
  settings: ReplaySettings,
): Promise<{ events: number; deadLetters: number }> {
  const log = createLogger(settings.logLevel);
  const input = settings.file === '-' ? process.stdin : fs.createReadStream(settings.file);
  const opened = new Promise<void>((resolve, reject) => {
    if (input === process.stdin) return resolve();
    input.once('open', () => resolve());
    input.once('error', (error: Error) =>
      reject(new ConfigError(`cannot read ${settings.file}: ${errorMessage(error)}`)),
    );
  });
  await opened;
  const target = await connectTarget(settings.targetUrl, settings.dialect);
  const schema = settings.schema ?? target.dialect.defaultSchema;
  // Bytes held as cdc-relay holds them: a batch of events, then the rows read back for patches.
  const half = Math.max(1, Math.floor(settings.batchBytes / 2));
  const writer = new TargetWriter(target.db, target.dialect, {
    schema,
    streamId: settings.streamId,
    onError: settings.onError,
    objectPolicy: settings.objectPolicy,
    tableFor: (collection) => settings.table ?? target.dialect.tableName(collection),
    lookupBytes: half,
  });
  let events = 0;
  let deadLetters = 0;
  let leftOut = 0;
  const leftOutOf = new Set<string>();
  let batch: RowEvent[] = [];
  let batchBytes = 0;
  const garbage = new GarbagePacer(settings.batchBytes);
  const flush = async () => {
    if (batch.length === 0) return;
    const result = await writer.write(foldBatch(batch), null);
    garbage.done(batchBytes);
    deadLetters += result.deadLetters.length;
    for (const letter of result.deadLetters)
      log.warn(`dead-lettered ${letter.collection} ${letter.oid}: ${letter.error}`);
    batch = [];
    batchBytes = 0;
  };
  try {
    await writer.prepare([]);
    let lineNumber = 0;
    for await (const line of readLines(input)) {
      lineNumber++;
      if (line.trim() === '') continue;
      for (const event of parseEventLine(line, lineNumber, settings.file)) {
        // As a whole-database relay does: a file of `relay tail` on a database holds them.
        if (isLeftOutWrite(event, null)) {
          const ns = `${event.ns.db}.${event.ns.coll}`;
          if (!leftOutOf.has(ns)) {
            leftOutOf.add(ns);
            log.info(
              `line ${lineNumber}: writes into ${ns} left out, as the relay leaves them out: ${leftOutBecause(event.ns.coll)}${temporaryOrigin(event.ns.coll) ? ' (replay does not apply the rename)' : ''}`,
            );
          }
          leftOut++;
          continue;
        }
        const converted = convertEvent(event, target.dialect.objectKey);
        if (converted.type === 'control') {
          await flush();
          log.info(`line ${lineNumber}: ${converted.operation} event not applied by replay`);
          continue;
        }
        batch.push(converted);
        batchBytes += BSON.calculateObjectSize(event);
        events++;
      }
      if (batch.length >= settings.batchSize || batchBytes >= half) await flush();
    }
    await flush();
    log.info(
      `replayed ${events} events from ${settings.file}; ${deadLetters} dead letters${leftOut > 0 ? `; ${leftOut} writes into MongoDB's temporary or Queryable Encryption state collections left out` : ''}`,
    );
    return { events, deadLetters };
  } catch (error) {
    // Lines before a malformed one are applied; nothing after it is.
    if (error instanceof ConfigError) await flush();
    throw error;
  } finally {
    await target.close();
  }
}
