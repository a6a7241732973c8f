// Control events: drop, rename and dropDatabase of a relayed collection act on its table per
// --on-drop; a rename onto a relayed collection (dropTarget, or $out into it) replaces that
// collection, so its table is handled per --on-drop too and then copied again; invalidate is
// logged (the source reopens past it); the rest is ignored.
import type { ControlEvent } from '../convert/event.js';
import type { RelayContext } from './context.js';
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
  const affected =
    operation === 'dropDatabase'
      ? ctx.collections
      : ctx.collections.filter((c) => c === control.collection);
  const to = operation === 'rename' ? control.event.to : undefined;
  const detail = to ? ` to ${to?.db}.${to?.coll}` : '';
  const mode = ctx.options.onDrop;
  if (affected.length > 0) {
    ctx.log.warn(`${operation} of ${ns}${detail} in the source; --on-drop ${mode}`, {
      tables: affected.map((c) => ctx.writer.options.tableFor(c)),
    });
    if (mode !== 'ignore') {
      for (const collection of affected)
        await ctx.target(() => ctx.writer.clear(collection, mode), signal);
    }
  }
  const replaced = renamedOnto(ctx, to);
  if (replaced !== null) await replaceCollection(ctx, `${ns}${detail}`, replaced, signal);
}

/** The relayed collection a rename's `to` names, or null (another database, or not relayed). */
function renamedOnto(
  ctx: RelayContext,
  to: { db?: string; coll?: string } | undefined,
): string | null {
  if (!to?.coll || to.db !== ctx.options.database) return null;
  const { collections } = ctx.options;
  // A whole-database relay follows every collection, one created by the rename too.
  if (collections && !collections.includes(to.coll)) return null;
  return to.coll;
}

/**
 * The collection now holds the renamed-in documents: its table is handled per --on-drop (with
 * `ignore` the old rows stay, as they do on a drop, and the copy upserts over them), then the
 * collection is copied as a one-collection snapshot recorded in the checkpoint, so a relay
 * stopped during the copy resumes it. The stream goes on after the rename event.
 */
async function replaceCollection(
  ctx: RelayContext,
  rename: string,
  collection: string,
  signal: AbortSignal,
): Promise<void> {
  const mode = ctx.options.onDrop;
  const table = ctx.writer.options.tableFor(collection);
  if (!ctx.collections.includes(collection)) ctx.collections = [...ctx.collections, collection];
  ctx.log.warn(
    `rename of ${rename} replaced ${ctx.options.database}.${collection} in the source; --on-drop ${mode} ${mode === 'ignore' ? 'keeps the rows' : mode === 'drop' ? 'drops' : 'empties'} table ${table}, then its documents are copied again`,
  );
  // Cleared before the checkpoint names the copy: a relay stopped in between replays the rename.
  if (mode !== 'ignore') await ctx.target(() => ctx.writer.clear(collection, mode), signal);
  await copyRenamedIn(ctx, collection, signal);
}
