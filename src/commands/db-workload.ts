// `relay db-workload`: seeded, rate-limited mutations of one collection, with a progress bar on a
// terminal (a line every few seconds otherwise) and a summary at the end.
import type { WorkloadSettings } from '../config.js';
import { connectMongo } from '../mongo/connect.js';
import { onStopSignal } from '../signals.js';
import { runWorkload, type WorkloadProgress, type WorkloadSummary } from '../workload/runner.js';

const BAR_WIDTH = 30;

export function progressLine(p: WorkloadProgress): string {
  const fraction =
    p.total !== null ? p.done / p.total : p.durationMs !== null ? p.elapsedMs / p.durationMs : null;
  const rate = p.done / Math.max(0.001, p.elapsedMs / 1000);
  const bar =
    fraction === null
      ? ''
      : `[${'#'.repeat(Math.round(Math.min(1, fraction) * BAR_WIDTH)).padEnd(BAR_WIDTH, '.')}] `;
  const of = p.total !== null ? `/${p.total}` : '';
  return `${bar}${p.done}${of} ops, ${rate.toFixed(0)}/s, ${(p.elapsedMs / 1000).toFixed(1)}s, errors ${p.errors}`;
}

export function summaryText(settings: WorkloadSettings, s: WorkloadSummary): string {
  const byType = Object.entries(s.byType)
    .map(([type, n]) => `${type} ${n}`)
    .join(', ');
  const init = s.initialized ? `loaded ${s.initialized} starting documents; ` : '';
  const errors = s.errors ? `; first error: ${s.firstError}` : '';
  return (
    `db-workload ${s.scenario} on ${settings.database}.${settings.collection}: ${init}` +
    `${s.operations} operations in ${(s.elapsedMs / 1000).toFixed(1)}s ` +
    `(${s.opsPerSecond.toFixed(0)}/s): ${byType}; errors ${s.errors}${errors}`
  );
}

export async function dbWorkload(
  settings: WorkloadSettings,
  err: NodeJS.WriteStream = process.stderr,
): Promise<WorkloadSummary> {
  const client = await connectMongo(settings.mongodbUrl, { requireChangeStreams: true });
  const controller = new AbortController();
  const stop = () => controller.abort();
  const releaseSignals = onStopSignal(stop);
  let lastLine = 0;
  const onProgress = (p: WorkloadProgress) => {
    if (err.isTTY) {
      err.write(`\r${progressLine(p)}\u001b[K`);
    } else if (p.elapsedMs - lastLine >= 5000) {
      lastLine = p.elapsedMs;
      err.write(`${progressLine(p)}\n`);
    }
  };
  try {
    const summary = await runWorkload(client, settings, controller.signal, onProgress);
    if (err.isTTY) err.write('\n');
    err.write(`${summaryText(settings, summary)}\n`);
    return summary;
  } finally {
    releaseSignals();
    await client.close().catch(() => {});
  }
}
