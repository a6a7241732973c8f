// Where the relay's CPU time goes: self time of a V8 CPU profile (from BENCH_PROFILE=1), grouped
// by package or project file, and the top functions. `tsx bench/profile.ts bench/out/<file>.cpuprofile`
import fs from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const file = process.argv[2];
if (!file) {
  console.error('usage: tsx bench/profile.ts <file.cpuprofile>');
  process.exit(2);
}
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
profile.samples.forEach((id, i) =>
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)),
);
const totalUs = [...self.values()].reduce((a, b) => a + b, 0);

function area(url: string, name: string): string {
  if (!url)
    return name === '(garbage collector)'
      ? 'garbage collection'
      : name === '(idle)'
        ? 'idle'
        : 'native/V8';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const own = /\/dist\/(.+)\.js$/.exec(url);
  return own ? `relay ${own[1]}` : url;
}

const areas = new Map<string, number>();
const functions = new Map<string, number>();
for (const [id, us] of self) {
  const node = byId.get(id)!;
  const a = area(node.callFrame.url, node.callFrame.functionName);
  areas.set(a, (areas.get(a) ?? 0) + us);
  const f = `${node.callFrame.functionName || '(anonymous)'} ${a}`;
  functions.set(f, (functions.get(f) ?? 0) + us);
}
const top = (m: Map<string, number>, n: number) =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, us]) => `  ${((100 * us) / totalUs).toFixed(1).padStart(5)}%  ${k}`)
    .join('\n');
console.log(
  `${(totalUs / 1e6).toFixed(1)} s of samples\nby area:\n${top(areas, 15)}\ntop functions (self time):\n${top(functions, 20)}`,
);
