// The sample documents of test/fixtures (its README says where they come from): one canonical
// Extended JSON document a line, file by file.
import fs from 'node:fs';

const dir = new URL('../fixtures/', import.meta.url);

/** [file name, its lines] for each `.jsonl` file of test/fixtures. */
export function sampleFiles(): [string, string[]][] {
  return fs
    .readdirSync(dir)
    .filter((file) => file.endsWith('.jsonl'))
    .map((file) => [file, fs.readFileSync(new URL(file, dir), 'utf8').split('\n').filter(Boolean)]);
}
