// The MongoDB harness's encoder never hands out a value js-bson cut short. js-bson serializes into
// one 17 MiB buffer and stops a string at its end without an error; a getMore holding several
// split-event fragments once stored a 6 MiB field as 2,096,399 characters that way.
import { describe, expect, it } from 'vitest';
import { BSON, Long } from 'bson';
import { encodeBson } from '../support/mongo/bson.js';
import { encoded, serializeReply } from '../support/mongo/encoded.js';

const MiB = 1024 * 1024;
/** A document whose last field, a string, runs past js-bson's buffer. */
const past = () => ({ a: 'a'.repeat(9 * MiB), b: 'b'.repeat(9 * MiB) });

describe('the harness BSON encoder', () => {
  it('js-bson itself cuts a string at the end of its buffer without an error', () => {
    const bytes = BSON.serialize(past());
    expect((BSON.deserialize(bytes).b as string).length).toBeLessThan(9 * MiB);
  });

  it('refuses what js-bson would cut, for documents and for replies', () => {
    expect(() => encodeBson(past())).toThrow(RangeError);
    expect(() => encoded(past())).toThrow(RangeError);
    // A reply with a stored document and then plain ones, as a getMore of fragments was built.
    const reply = {
      cursor: {
        nextBatch: [encoded({ _id: 1 }), { x: 'x'.repeat(9 * MiB) }, { y: 'y'.repeat(9 * MiB) }],
        id: Long.fromNumber(1),
        ns: 'd.c',
      },
      ok: 1,
    };
    expect(() => serializeReply(reply)).toThrow(RangeError);
  });

  it('encodes up to a reply of 16 MiB + 16 KiB exactly', () => {
    const doc = { a: 'a'.repeat(16 * MiB), b: 'b'.repeat(16 * 1024 - 32) };
    const bytes = encodeBson(doc);
    expect(BSON.deserialize(bytes)).toEqual(doc);
  });
});
