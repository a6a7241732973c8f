// `relay replay FILE`: apply change events from canonical Extended JSON lines (what `relay tail`
// prints) to a target, through the same convert -> fold -> write path as the relay.
import fs from 'node:fs';
import readline from 'node:readline';
import { EJSON, type Document } from 'bson';
import type { ReplaySettings } from '../config.js';
import { convertEvent, type RowEvent } from '../convert/event.js';
import { foldBatch } from '../convert/fold.js';
import { ConfigError, errorMessage } from '../errors.js';
import { createLogger } from '../log.js';
import { connectTarget } from '../target/connect.js';
import { TargetWriter } from '../target/writer.js';

const ROW_OPERATIONS = new Set(['insert', 'update', 'replace', 'delete']);

/**
 * Parses one line into change events (a line is one event, or an array of events as the
 * `event` column of relay_dead_letters holds), or says in one sentence why it is not.
 */
export function parseEventLine(line: string, lineNumber: number, file: string): Document[] {
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

function checkEvent(event: unknown, where: string): Document {
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
  return e;
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
  const writer = new TargetWriter(target.db, target.dialect, {
    schema,
    streamId: settings.streamId,
    onError: settings.onError,
    objectPolicy: settings.objectPolicy,
    tableFor: (collection) => settings.table ?? target.dialect.tableName(collection),
  });
  let events = 0;
  let deadLetters = 0;
  let batch: RowEvent[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const result = await writer.write(foldBatch(batch), null);
    deadLetters += result.deadLetters.length;
    for (const letter of result.deadLetters)
      log.warn(`dead-lettered ${letter.collection} ${letter.oid}: ${letter.error}`);
    batch = [];
  };
  try {
    await writer.prepare([]);
    let lineNumber = 0;
    for await (const line of readline.createInterface({ input, crlfDelay: Infinity })) {
      lineNumber++;
      if (line.trim() === '') continue;
      for (const event of parseEventLine(line, lineNumber, settings.file)) {
        const converted = convertEvent(event, target.dialect.objectKey);
        if (converted.type === 'control') {
          await flush();
          log.info(`line ${lineNumber}: ${converted.operation} event not applied by replay`);
          continue;
        }
        batch.push(converted);
        events++;
      }
      if (batch.length >= settings.batchSize) await flush();
    }
    await flush();
    log.info(`replayed ${events} events from ${settings.file}; ${deadLetters} dead letters`);
    return { events, deadLetters };
  } catch (error) {
    // Lines before a malformed one are applied; nothing after it is.
    if (error instanceof ConfigError) await flush();
    throw error;
  } finally {
    await target.close();
  }
}
