// `npm run bench [-- --quick] [-- backlog snapshot …]`: runs the benchmarks one after another, each
// in its own process, and writes their figures to bench/RESULTS.md with the machine and the
// command behind each, next to the targets. The hand-written analysis section of the file is kept.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { machine } from './lib.js';

const ALL = ['backlog', 'snapshot', 'latency', 'memory', 'large', 'large-cratedb'] as const;
type Bench = (typeof ALL)[number];
/** What each benchmark runs: its script and arguments. */
const SCRIPTS: Record<Bench, string[]> = {
  backlog: ['bench/backlog.ts'],
  snapshot: ['bench/snapshot.ts'],
  latency: ['bench/latency.ts'],
  memory: ['bench/memory.ts'],
  large: ['bench/large.ts'],
  'large-cratedb': ['bench/large.ts', '--cratedb'],
};
const quick = process.argv.includes('--quick');
const chosen = ALL.filter((b) => process.argv.includes(b));
const benches: readonly Bench[] = chosen.length ? chosen : ALL;
const RESULTS = new URL('./RESULTS.md', import.meta.url);
const ANALYSIS = '## Analysis';

type Result = Record<string, unknown>;

function run(bench: Bench): Promise<Result> {
  return new Promise((resolve, reject) => {
    const args = ['--import', 'tsx', ...SCRIPTS[bench], ...(quick ? ['--quick'] : [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) return reject(new Error(`bench ${bench} exited ${code}`));
      process.stdout.write(`${last}\n`);
      resolve(JSON.parse(last) as Result);
    });
  });
}

const TARGETS: Record<Bench, (r: Result) => string[]> = {
  backlog: (r) => [
    atMost('relay CPU per event (µs)', r.relay_cpu_us_per_event, 20),
    atLeast('source alone / relay', r.ratio_source_to_relay, 3),
    atLeast('relay / target ceiling', r.ratio_to_ceiling, 0.6),
    atLeast('relay / per-event baseline', r.ratio_to_baseline, 20),
    atMost('peak RSS (MB)', r.peak_rss_mb, 256),
  ],
  snapshot: (r) => [
    atLeast('snapshot / target ceiling', r.ratio_to_ceiling, 0.6),
    atLeast('snapshot: source alone / relay', r.ratio_source_to_relay, 3),
  ],
  latency: (r) => [atMost('p99 latency (ms) at 1000 ops/s', r.p99_ms, 250)],
  memory: (r) => [
    atMost('peak RSS (MB) under a slow target', r.peak_rss_mb, 256),
    none('events lost', r.lost),
  ],
  large: (r) => [
    atMost(
      'peak RSS (MB), 300 × 2 MB and 20 × 15 MB documents, stream and snapshot',
      r.peak_rss_mb,
      256,
    ),
    atMost('peak RSS (MB) of relay verify on them', r.verify_peak_rss_mb, 256),
    none('large documents lost', r.lost),
  ],
  'large-cratedb': (r) => [
    atMost('peak RSS (MB), the same on the CrateDB harness', r.peak_rss_mb, 256),
    none('large documents lost on CrateDB', r.lost),
  ],
};

/** One row of the targets table. */
function verdict(what: string, value: number, target: string, met: boolean): string {
  return `| ${what} | ${value} | ${target} | ${met ? 'met' : '**missed**'} |`;
}
const atMost = (what: string, figure: unknown, limit: number) =>
  verdict(what, Number(figure), `≤ ${limit}`, Number(figure) <= limit);
const atLeast = (what: string, figure: unknown, limit: number) =>
  verdict(what, Number(figure), `≥ ${limit}`, Number(figure) >= limit);
const none = (what: string, figure: unknown) =>
  verdict(what, Number(figure), '0', Number(figure) === 0);

const previous = fs.existsSync(RESULTS) ? fs.readFileSync(RESULTS, 'utf8') : '';
// Figures of benchmarks not run this time stay as they were, with their own command and date.
const results: Partial<Record<Bench, Result>> = {};
const commands: Partial<Record<Bench, string>> = {};
for (const bench of ALL) {
  const section = new RegExp(`## ${bench}\\n\\n([^\\n]+)\\n\\n\`\`\`json\\n([^\\n]+)\\n`).exec(
    previous,
  );
  if (section) {
    commands[bench] = section[1]!;
    results[bench] = JSON.parse(section[2]!) as Result;
  }
}
const measured = new Date().toISOString().slice(0, 16).replace('T', ' ');
// The machine is shared: the load around each benchmark says how much its rates can be trusted.
const load = () => os.loadavg()[0]!.toFixed(1);
for (const bench of benches) {
  const before = load();
  results[bench] = await run(bench);
  commands[bench] =
    `\`npm run bench -- ${bench}${quick ? ' --quick' : ''}\` (${measured} UTC, load average ${before} before, ${load()} after)`;
}
const shown = ALL.filter((b) => results[b]);
const analysis = previous.includes(ANALYSIS)
  ? previous.slice(previous.indexOf(ANALYSIS))
  : `${ANALYSIS}\n\n(none yet)\n`;
const lines = [
  '# Benchmark results',
  '',
  `Last run ${measured} UTC on ${machine()}, against the MongoDB`,
  'harness (its own process) and an embedded PostgreSQL 18 (or BENCH_TARGET_URL; large-cratedb: the CrateDB harness, its own process), all on the same machine.',
  `Run: \`npm run bench${quick ? ' -- --quick' : ''}\` (each figure's own command is in its section). Targets are ratios so they hold on noisy hardware.`,
  '',
  '| measure | value | target | |',
  '|---|---|---|---|',
  ...shown.flatMap((b) => TARGETS[b](results[b]!)),
  '',
];
for (const bench of shown) {
  lines.push(
    `## ${bench}`,
    '',
    commands[bench]!,
    '',
    '```json',
    JSON.stringify(results[bench]),
    '```',
    '',
  );
}
fs.writeFileSync(RESULTS, `${lines.join('\n')}\n${analysis}`);
process.stderr.write(`wrote ${RESULTS.pathname}\n`);
