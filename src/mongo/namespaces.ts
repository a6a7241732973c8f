// Collections a whole-database relay leaves out. Temporary ones MongoDB creates for one command
// and renames onto their target when it is done: a stream on a whole database sees their writes
// like any other (ordinary, logged inserts), but their documents reach the relay through the
// rename onto the target, which copies that collection again; relaying the writes themselves
// would only leave tables nobody asked for. Queryable Encryption's state collections hold the
// server's metadata of an encrypted collection, not user data; a database change stream shows
// their writes too (it leaves out only `system.*`, kRegexAllCollections in
// document_source_change_stream.h).

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

const ENCRYPTION_STATE_SUFFIXES = ['.esc', '.ecc', '.ecoc', '.ecoc.compact'];

/**
 * Whether this is a Queryable Encryption state collection, by the server's own test
 * (NamespaceString::isFLE2StateCollection, src/mongo/db/namespace_string.cpp): `enxcol_.` then
 * `.esc` (state), `.ecoc` (compaction), `.ecc` (cache, before 7.0) or `.ecoc.compact` (the ECOC
 * renamed aside while compactStructuredEncryptionData runs). Drivers name them
 * `enxcol_.<collection>.esc` and so on when they create an encrypted collection.
 */
export function isEncryptionState(collection: string): boolean {
  return (
    collection.startsWith('enxcol_.') &&
    ENCRYPTION_STATE_SUFFIXES.some((suffix) => collection.endsWith(suffix))
  );
}

/**
 * Whether a whole-database relay leaves this collection out: MongoDB's own (`system.*`, which a
 * change stream never shows either), temporary and Queryable Encryption state collections.
 */
export function isInternalCollection(collection: string): boolean {
  return (
    collection.startsWith('system.') ||
    temporaryOrigin(collection) !== null ||
    isEncryptionState(collection)
  );
}

/** Why a whole-database relay leaves this collection out, for its log line; null if it does not. */
export function leftOutBecause(collection: string): string | null {
  const origin = temporaryOrigin(collection);
  if (origin !== null) {
    return `MongoDB's temporary collection of ${origin}, whose documents are copied when it is renamed onto its target`;
  }
  if (isEncryptionState(collection)) {
    return "a Queryable Encryption state collection: the server's metadata of an encrypted collection, not user data";
  }
  if (collection.startsWith('system.')) return "MongoDB's own collection";
  return null;
}

/** The operation types that write one row; every other event is about a collection or database. */
export const ROW_OPERATIONS: ReadonlySet<string> = new Set([
  'insert',
  'update',
  'replace',
  'delete',
]);

/**
 * A write into a collection a whole-database relay leaves out (isInternalCollection), which a
 * whole-database stream shows for temporary and Queryable Encryption state collections. A
 * temporary collection's documents arrive through the rename onto the target, which copies that
 * collection (relay/control.ts). A collection asked for by name (`asked`; null for a whole
 * database) is relayed whatever its name; the other events of a left-out collection (a rename,
 * a drop after a failed $out) go through.
 */
export function isLeftOutWrite(
  event: { readonly operationType: string; readonly ns?: { readonly coll?: string } },
  asked: readonly string[] | null,
): boolean {
  const collection = event.ns?.coll;
  return (
    collection !== undefined &&
    ROW_OPERATIONS.has(event.operationType) &&
    isInternalCollection(collection) &&
    !asked?.includes(collection)
  );
}
