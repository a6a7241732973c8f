// A change event -> what it asks of the target (DESIGN.md §2). Pure: no I/O.
import type { Document } from 'bson';
import { RowError } from '../errors.js';
import { bsonRowJson, decodeDocument } from './bson.js';
import { ChangeEvent } from './change.js';
import { rowJson, type KeyPolicy } from './value.js';

/** A field path inside the document, keys as MongoDB spells them (the dialect may respell). */
export type FieldPath = string[];

/** A change description; values are BSON as the driver decodes them. */
export interface Patch {
  set: { path: FieldPath; value: unknown }[];
  unset: FieldPath[];
  truncate: { path: FieldPath; size: number }[];
}

/** A full document to upsert: the BSON document and the row JSON text written from it. */
export interface Upsert {
  readonly kind: 'upsert';
  /** The document, decoded where a reader needs it (CrateDB's typing, a patch merged into it). */
  readonly doc: Document;
  readonly json: string;
  /** The dialect's key spelling `json` was written with (a patch merged later writes again). */
  readonly keys: KeyPolicy;
}

/** An upsert of a document still in its BSON: the text is written from the bytes. */
class BsonUpsert implements Upsert {
  readonly kind = 'upsert';
  readonly json: string;
  private decoded: Document | undefined;

  constructor(
    private readonly bytes: Buffer,
    private readonly at: number,
    readonly keys: KeyPolicy,
  ) {
    this.json = bsonRowJson(bytes, keys, at);
  }

  get doc(): Document {
    return (this.decoded ??= decodeDocument(this.bytes, this.at));
  }
}

export type RowChange =
  | Upsert
  | { kind: 'patch'; patch: Patch }
  | { kind: 'delete' }
  /** The event cannot become a row write (e.g. a key collision): it is dead-lettered. */
  | { kind: 'reject'; error: string };

/** A change to one row, with where it came from. */
export interface RowEvent {
  type: 'row';
  /** Source collection (the event's `ns.coll`). */
  collection: string;
  oid: string;
  change: RowChange;
  event: ChangeEvent;
}

/**
 * A change to a whole collection or database (`drop`, `rename`, `dropDatabase`, `invalidate`),
 * or an event type that does not touch rows (e.g. `create`), which the pipeline logs.
 */
export interface ControlEvent {
  type: 'control';
  operation: string;
  collection?: string;
  event: Document;
}

export type ConvertedEvent = RowEvent | ControlEvent;

/** Dotted change-stream paths ("a.b.0") -> key lists. */
function pathOf(dotted: string): FieldPath {
  return dotted.split('.');
}

export function toPatch(description: Document): Patch {
  const updated = (description.updatedFields ?? {}) as Document;
  return {
    set: Object.entries(updated).map(([path, value]) => ({ path: pathOf(path), value })),
    unset: ((description.removedFields ?? []) as string[]).map(pathOf),
    truncate: ((description.truncatedArrays ?? []) as { field: string; newSize: number }[]).map(
      (t) => ({ path: pathOf(t.field), size: Number(t.newSize) }),
    ),
  };
}

/** An upsert of `doc`, its row JSON text written once here (a key collision is a `RowError`). */
export function upsertOf(doc: Document, keys: KeyPolicy): Upsert {
  return { kind: 'upsert', doc, json: rowJson(doc, keys), keys };
}

/**
 * What `event` asks of the target: an event as read from MongoDB, or one given as a document
 * (replay, dead letters), which is converted from its BSON the same way.
 */
export function convertEvent(input: ChangeEvent | Document, keys: KeyPolicy): ConvertedEvent {
  const event = input instanceof ChangeEvent ? input : ChangeEvent.fromDocument(input);
  const operation = event.operationType;
  const collection = event.ns?.coll ?? '';
  switch (operation) {
    case 'insert':
    case 'replace':
    case 'update':
    case 'delete':
      break;
    default:
      return { type: 'control', operation, collection: event.ns?.coll, event: event.toDocument() };
  }
  const oid = event.oid();
  if (oid === null) {
    throw new RowError(`${operation} event on ${collection} has no documentKey._id`);
  }
  let change: RowChange;
  try {
    change = rowChange(operation, event, keys);
  } catch (error) {
    if (!(error instanceof RowError)) throw error;
    change = { kind: 'reject', error: error.message };
  }
  return { type: 'row', collection, oid, change, event };
}

function rowChange(operation: string, event: ChangeEvent, keys: KeyPolicy): RowChange {
  if (operation === 'delete') return { kind: 'delete' };
  const full = event.fullDocumentOffset;
  if (full >= 0) return new BsonUpsert(event.bytes, full, keys);
  const description = operation === 'update' ? event.updateDescription() : null;
  if (description) return { kind: 'patch', patch: toPatch(description) };
  throw new RowError(`${operation} event carries neither fullDocument nor updateDescription`);
}
