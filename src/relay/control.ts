// Control events: drop, rename and dropDatabase of a relayed collection act on its table per
// --on-drop; a rename onto a relayed collection (dropTarget, $out into it, a rename from another
// database) replaces that collection, so its table is handled per --on-drop too and then copied
// again; invalidate is logged (the source reopens past it); the rest is ignored.
import type { ControlEvent } from '../convert/event.js';
import { isInternalCollection, temporaryOrigin } from '../mongo/namespaces.js';
import type { OnDrop, RelayContext } from './context.js';
import { copyRenamedIn } from './copy.js';

export async function applyControl(
  ctx: RelayContext,
  control: ControlEvent,
  signal: AbortSignal,
): Promise<void> {
  const { operation } = control;
  const ns = `${ctx.options.database}${control.collection ? `.${control.collection}` : ''}`;
  if (operation === 'invalidate') {
    ctx.log.info(`change stream on ${ns} invalidated; reopened after it with startAfter`);
    return;
  }
  if (operation !== 'drop' && operation !== 'rename' && operation !== 'dropDatabase') {
    ctx.log.debug(`ignoring ${operation} event on ${ns}`);
    return;
  }
  const affected = operation === 'dropDatabase' ? ctx.collections : relayed(ctx, control);
  const to = operation === 'rename' ? control.event.to : undefined;
  const mode = ctx.options.onDrop;
  if (affected.length > 0) {
    const tables = affected.map((c) => ctx.writer.options.tableFor(c));
    ctx.log.warn(`${happened(operation, ns, to)}; ${effect(mode, tables)}`, {
      tables,
    });
    if (mode !== 'ignore') {
      for (const collection of affected)
        await ctx.target(() => ctx.writer.clear(collection, mode), signal);
    }
  }
  const replaced = renamedOnto(ctx, to);
  if (replaced !== null) await replaceCollection(ctx, control, replaced, signal);
}

/**
 * The relayed collection a drop or rename event is about, as a list: a whole-database relay
 * follows every collection but MongoDB's own, those created since it started too.
 */
function relayed(ctx: RelayContext, control: ControlEvent): string[] {
  const collection = control.collection;
  if (!collection) return [];
  const followed =
    ctx.options.collections === null
      ? !isInternalCollection(collection)
      : ctx.collections.includes(collection);
  return followed ? [collection] : [];
}

/** What the event says happened. MongoDB renames into another database by a copy and a drop. */
function happened(operation: string, ns: string, to: { db?: string; coll?: string } | undefined) {
  if (operation === 'rename') return `rename of ${ns} to ${to?.db}.${to?.coll} in the source`;
  if (operation === 'drop') {
    return `drop of ${ns} in the source (a drop, or a rename into another database, which MongoDB carries out as a copy there and a drop here)`;
  }
  return `${operation} of ${ns} in the source`;
}

/** What --on-drop does to the tables. */
function effect(mode: OnDrop, tables: string[]): string {
  const what = mode === 'ignore' ? 'keeps' : mode === 'drop' ? 'drops' : 'empties';
  return `--on-drop ${mode} ${what} table${tables.length === 1 ? '' : 's'} ${tables.join(', ')}`;
}

/** The relayed collection a rename's `to` names, or null (another database, or not relayed). */
function renamedOnto(
  ctx: RelayContext,
  to: { db?: string; coll?: string } | undefined,
): string | null {
  if (!to?.coll || to.db !== ctx.options.database) return null;
  const { collections } = ctx.options;
  // A whole-database relay follows every collection, one created by the rename too.
  if (collections ? !collections.includes(to.coll) : isInternalCollection(to.coll)) return null;
  return to.coll;
}

/**
 * The rename onto `collection` as the user made it: a rename, or a command MongoDB carries out
 * through a temporary collection renamed onto its target.
 */
function renameOnto(ctx: RelayContext, control: ControlEvent, collection: string): string {
  const { database } = ctx.options;
  const from = `${database}.${control.collection}`;
  const target = `${database}.${collection}`;
  switch (temporaryOrigin(control.collection)) {
    case '$out':
      return `$out into ${target} (written to ${from}, then renamed onto it)`;
    case 'cross-database rename':
      return `a rename from another database onto ${target} (copied into ${from}, then renamed onto it)`;
    case 'mapReduce':
      return `mapReduce output into ${target} (written to ${from}, then renamed onto it)`;
    case null:
      return `rename of ${from} to ${target}`;
  }
}

/**
 * The collection now holds the renamed-in documents: its table is handled per --on-drop (with
 * `ignore` the old rows stay, as they do on a drop, and the copy upserts over them), then the
 * collection is copied as a one-collection snapshot recorded in the checkpoint, so a relay
 * stopped during the copy resumes it. The stream goes on after the rename event.
 */
async function replaceCollection(
  ctx: RelayContext,
  control: ControlEvent,
  collection: string,
  signal: AbortSignal,
): Promise<void> {
  const mode = ctx.options.onDrop;
  const table = ctx.writer.options.tableFor(collection);
  if (!ctx.collections.includes(collection)) ctx.collections = [...ctx.collections, collection];
  ctx.log.warn(
    `${renameOnto(ctx, control, collection)} replaced ${ctx.options.database}.${collection} in the source; ${effect(mode, [table])}, then its documents are copied again`,
  );
  // Cleared before the checkpoint names the copy: a relay stopped in between replays the rename.
  if (mode !== 'ignore') await ctx.target(() => ctx.writer.clear(collection, mode), signal);
  await copyRenamedIn(ctx, collection, signal);
}
