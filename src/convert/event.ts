// A change event -> what it asks of the target (DESIGN.md §2). Pure: no I/O.
import type { Document } from 'bson';
import { RowError } from '../errors.js';
import { oidOf, rowJson, type KeyPolicy } from './value.js';

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
  kind: 'upsert';
  doc: Document;
  json: string;
  /** The dialect's key spelling `json` was written with (a patch merged later writes again). */
  keys: KeyPolicy;
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
  event: Document;
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

export function convertEvent(event: Document, keys: KeyPolicy): ConvertedEvent {
  const operation = event.operationType as string;
  const collection = (event.ns?.coll as string | undefined) ?? '';
  switch (operation) {
    case 'insert':
    case 'replace':
    case 'update':
    case 'delete':
      break;
    default:
      return { type: 'control', operation, collection: event.ns?.coll, event };
  }
  if (!event.documentKey || !('_id' in event.documentKey)) {
    throw new RowError(`${operation} event on ${collection} has no documentKey._id`);
  }
  const oid = oidOf(event.documentKey._id);
  let change: RowChange;
  try {
    change = rowChange(operation, event, keys);
  } catch (error) {
    if (!(error instanceof RowError)) throw error;
    change = { kind: 'reject', error: error.message };
  }
  return { type: 'row', collection, oid, change, event };
}

function rowChange(operation: string, event: Document, keys: KeyPolicy): RowChange {
  if (operation === 'delete') return { kind: 'delete' };
  const full = event.fullDocument as Document | null | undefined;
  if (full) return upsertOf(full, keys);
  if (operation === 'update' && event.updateDescription) {
    return { kind: 'patch', patch: toPatch(event.updateDescription) };
  }
  throw new RowError(`${operation} event carries neither fullDocument nor updateDescription`);
}
