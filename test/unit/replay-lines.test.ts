// `relay replay` reads its file a line at a time as it applies it, so lines of megabytes (events
// with large documents) are never buffered by the thousand.
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readLines } from '../../src/commands/replay.js';

async function collect(input: NodeJS.ReadableStream): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of readLines(input)) lines.push(line);
  return lines;
}

describe('readLines', () => {
  it.each([
    ['LF', ['a\nb\n'], ['a', 'b']],
    ['CRLF', ['a\r\nb\r\n'], ['a', 'b']],
    ['no newline at the end', ['a\nb'], ['a', 'b']],
    ['empty lines kept', ['a\n\nb\n'], ['a', '', 'b']],
    ['a line across chunks', ['{"a":', '1}\n{"b"', ':2}\n'], ['{"a":1}', '{"b":2}']],
    ['CR and LF in different chunks', ['a\r', '\nb'], ['a', 'b']],
  ])('%s', async (_name, chunks, expected) => {
    expect(await collect(Readable.from(chunks.map((c) => Buffer.from(c))))).toEqual(expected);
  });

  it('keeps a multi-byte character split between chunks', async () => {
    const bytes = Buffer.from('"é€😀"\n');
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    expect(await collect(Readable.from(chunks))).toEqual(['"é€😀"']);
  });

  it('reads no further than the line asked for', async () => {
    const input = new PassThrough({ highWaterMark: 1024 });
    const line = `${'x'.repeat(100_000)}\n`;
    let written = 0;
    const writer = (async () => {
      for (let i = 0; i < 50; i++) {
        if (!input.write(line)) await new Promise((r) => input.once('drain', r));
        written++;
      }
      input.end();
    })();
    const lines = readLines(input);
    const first = await lines.next();
    expect(first.value).toHaveLength(100_000);
    await new Promise((r) => setTimeout(r, 50));
    // Backpressure holds the writer within a few lines of the reader.
    expect(written).toBeLessThan(5);
    let count = 1;
    for await (const _ of lines) count++;
    await writer;
    expect(count).toBe(50);
  });
});
