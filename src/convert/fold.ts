// Folding a batch of row events per oid (DESIGN.md §2): the fewest row writes that leave the
// table as applying every event in order would. Pure functions.
import { RowError } from '../errors.js';
import { upsertOf, type FieldPath, type Patch, type RowEvent, type Upsert } from './event.js';
import { isContainer, keepKeys, type KeyPolicy } from './value.js';

export type FoldedChange =
  | Upsert
  /** Patches to apply, in order, to the row as the target stores it. */
  | { kind: 'patch'; patches: Patch[] }
  | { kind: 'delete' }
  | { kind: 'reject'; error: string };

export interface FoldedRow {
  collection: string;
  oid: string;
  change: FoldedChange;
  /** The events folded into this row, oldest first (what a dead letter records). */
  events: RowEvent['event'][];
}

/** Folds events per (collection, oid), keeping the order in which rows were first touched. */
export function foldBatch(events: RowEvent[]): FoldedRow[] {
  // Rows by oid within each collection: no key is built per event.
  const byCollection = new Map<string, Map<string, FoldedRow>>();
  const folded: FoldedRow[] = [];
  for (const event of events) {
    let rows = byCollection.get(event.collection);
    if (!rows) byCollection.set(event.collection, (rows = new Map()));
    const row = rows.get(event.oid);
    if (!row) {
      const created: FoldedRow = {
        collection: event.collection,
        oid: event.oid,
        change: first(event),
        events: [event.event],
      };
      rows.set(event.oid, created);
      folded.push(created);
      continue;
    }
    row.change = combine(row.change, event);
    row.events.push(event.event);
  }
  return folded;
}

function first(event: RowEvent): FoldedChange {
  const change = event.change;
  return change.kind === 'patch' ? { kind: 'patch', patches: [change.patch] } : change;
}

/** A full document or a delete settles the row whatever came before; a patch builds on it. */
function combine(previous: FoldedChange, event: RowEvent): FoldedChange {
  const next = event.change;
  if (next.kind !== 'patch') return next;
  switch (previous.kind) {
    case 'upsert':
      try {
        return upsertOf(applyPatch(previous.doc, next.patch), previous.keys);
      } catch (error) {
        if (!(error instanceof RowError)) throw error;
        return { kind: 'reject', error: error.message };
      }
    case 'patch':
      return { kind: 'patch', patches: [...previous.patches, next.patch] };
    case 'delete':
      // MongoDB cannot update a deleted document; a patch here means events were lost upstream.
      return {
        kind: 'reject',
        error: `update of ${event.oid} in ${event.collection} follows its delete`,
      };
    case 'reject':
      return previous;
  }
}

/** Objects and arrays of a document: BSON as decoded, or a stored row (`parseStoredJson`). */
type Tree = { [key: string]: unknown };
type Container = Tree | unknown[];

function child(container: Container, key: string): unknown {
  if (Array.isArray(container)) return /^\d+$/.test(key) ? container[Number(key)] : undefined;
  return Object.prototype.hasOwnProperty.call(container, key) ? container[key] : undefined;
}

/** The container holding the last key of `path`, created as objects where missing when `create`. */
function parentOf(root: Tree, path: FieldPath, create: boolean): Container | undefined {
  let node: Container = root;
  for (const key of path.slice(0, -1)) {
    let next = child(node, key);
    if (!isContainer(next)) {
      if (!create) return undefined;
      if (Array.isArray(node) && !/^\d+$/.test(key)) {
        throw new RowError(`cannot set field "${key}" inside an array at ${path.join('.')}`);
      }
      next = {};
      setChild(node, key, next);
    }
    node = next as Container;
  }
  return node;
}

function setChild(container: Container, key: string, value: unknown): void {
  if (Array.isArray(container)) {
    const index = Number(key);
    while (container.length < index) container.push(null);
    container[index] = value;
  } else {
    container[key] = value;
  }
}

/** A copy of the objects and arrays; leaves (BSON values, stored numbers) are immutable, shared. */
function copyTree<T>(value: T): T {
  if (Array.isArray(value)) return value.map(copyTree) as T;
  if (!isContainer(value)) return value;
  const out: Tree = {};
  for (const key of Object.keys(value)) out[key] = copyTree((value as Tree)[key]);
  return out as T;
}

/**
 * Applies a change description to a document, as MongoDB applied it to the source. `keys`
 * respells the patch's paths the way the document spells them (a row stored by a dialect that
 * renames keys); values are set as they are and spelled when the row is written.
 */
export function applyPatch<T extends Tree>(data: T, patch: Patch, keys: KeyPolicy = keepKeys): T {
  const out = copyTree(data);
  const spell = (path: FieldPath) => (keys === keepKeys ? path : path.map(keys));
  for (const { path: raw, value } of patch.set) {
    const path = spell(raw);
    setChild(parentOf(out, path, true)!, path.at(-1)!, copyTree(value));
  }
  for (const raw of patch.unset) {
    const path = spell(raw);
    const parent = parentOf(out, path, false);
    const key = path.at(-1)!;
    if (!parent) continue;
    if (Array.isArray(parent)) {
      if (/^\d+$/.test(key) && Number(key) < parent.length) parent[Number(key)] = null;
    } else {
      delete parent[key];
    }
  }
  for (const { path: raw, size } of patch.truncate) {
    const path = spell(raw);
    const parent = parentOf(out, path, false);
    const array = parent && child(parent, path.at(-1)!);
    if (Array.isArray(array)) array.length = Math.min(array.length, size);
  }
  return out;
}
