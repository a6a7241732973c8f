// Collections MongoDB creates for one command and renames onto their target when it is done. A
// stream on a whole database sees their writes like any other (ordinary, logged inserts), but
// their documents reach the relay through the rename onto the target, which copies that
// collection again; relaying the writes themselves would only leave tables nobody asked for.

/** What made a temporary collection, for log lines. */
export type TemporaryOrigin = '$out' | 'cross-database rename' | 'mapReduce';

/**
 * The server command behind a temporary collection's name, or null for any other name:
 * `tmp.agg_out.<UUID>` of `$out` (document_source_out.cpp; a counter before 4.4),
 * `tmp<5 letters or digits>.renameCollection` of a rename into another database
 * (rename_collection.cpp), `tmp.mr.<collection>_<n>` of mapReduce before 4.4 (mr.cpp; from 4.4
 * mapReduce runs as an aggregation and writes through `$out` or `$merge`).
 */
export function temporaryOrigin(collection: string | undefined): TemporaryOrigin | null {
  if (collection === undefined) return null;
  if (collection.startsWith('tmp.agg_out.')) return '$out';
  if (/^tmp[0-9A-Za-z]{5}\.renameCollection$/.test(collection)) return 'cross-database rename';
  if (collection.startsWith('tmp.mr.')) return 'mapReduce';
  return null;
}

/**
 * Whether a whole-database relay leaves this collection out: MongoDB's own (`system.*`, which a
 * change stream never shows either) and temporary collections.
 */
export function isInternalCollection(collection: string): boolean {
  return collection.startsWith('system.') || temporaryOrigin(collection) !== null;
}

/** The operation types that write one row; every other event is about a collection or database. */
export const ROW_OPERATIONS: ReadonlySet<string> = new Set([
  'insert',
  'update',
  'replace',
  'delete',
]);

/**
 * A write into one of MongoDB's temporary collections ($out, a rename from another database,
 * mapReduce), which a whole-database stream shows: left out, since its documents arrive through
 * the rename onto the target, which copies that collection (relay/control.ts). A collection asked
 * for by name (`asked`; null for a whole database) is relayed whatever its name; the other events
 * of a temporary collection (its rename, a drop after a failed $out) go through.
 */
export function isTemporaryWrite(
  event: { readonly operationType: string; readonly ns?: { readonly coll?: string } },
  asked: readonly string[] | null,
): boolean {
  const collection = event.ns?.coll;
  return (
    ROW_OPERATIONS.has(event.operationType) &&
    temporaryOrigin(collection) !== null &&
    !asked?.includes(collection!)
  );
}
