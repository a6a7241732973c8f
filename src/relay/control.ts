// Control events: drop, rename and dropDatabase of a relayed collection act on its table per
// --on-drop; invalidate is logged (the source reopens past it); the rest is ignored.
import type { ControlEvent } from '../convert/event.js';
import type { RelayContext } from './context.js';

export async function applyControl(ctx: RelayContext, control: ControlEvent): Promise<void> {
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
  const detail =
    operation === 'rename' ? ` to ${control.event.to?.db}.${control.event.to?.coll}` : '';
  const mode = ctx.options.onDrop;
  ctx.log.warn(`${operation} of ${ns}${detail} in the source; --on-drop ${mode}`, {
    tables: affected.map((c) => ctx.writer.options.tableFor(c)),
  });
  if (mode === 'ignore') return;
  for (const collection of affected) await ctx.writer.clear(collection, mode);
}
