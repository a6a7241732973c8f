// Change events over 16 MB arrive as $changeStreamSplitLargeEvent fragments (MongoDB 7.0, 6.0.9+;
// the server's change_stream_split_event.cpp splits at top-level fields) and are reassembled into
// the one event before conversion.
import { describe, expect, it } from 'vitest';
import { Int32, type Document } from 'bson';
import { ChangeEvent } from '../../src/convert/change.js';
import { FragmentAssembler, mergeFragments, supportsSplitEvents } from '../../src/mongo/source.js';

const token = (n: number) => ({ _data: `82650000000${n}` });

/** As the server sends them: `fragment` and `of` are Int32. */
function fragments(): ChangeEvent[] {
  const documents: Document[] = [
    {
      _id: token(1),
      splitEvent: { fragment: new Int32(1), of: new Int32(3) },
      operationType: 'update',
      ns: { db: 'm', coll: 'c' },
      documentKey: { _id: 7 },
      updateDescription: { updatedFields: { n: 1 }, removedFields: [] },
    },
    {
      _id: token(2),
      splitEvent: { fragment: new Int32(2), of: new Int32(3) },
      fullDocumentBeforeChange: { _id: 7, big: 'a' },
    },
    {
      _id: token(3),
      splitEvent: { fragment: new Int32(3), of: new Int32(3) },
      fullDocument: { _id: 7, big: 'b' },
    },
  ];
  return documents.map((d) => ChangeEvent.fromDocument(d));
}

const whole = {
  _id: token(3),
  operationType: 'update',
  ns: { db: 'm', coll: 'c' },
  documentKey: { _id: 7 },
  updateDescription: { updatedFields: { n: 1 }, removedFields: [] },
  fullDocumentBeforeChange: { _id: 7, big: 'a' },
  fullDocument: { _id: 7, big: 'b' },
};

describe('split change events', () => {
  it('merges the fragments in order, with the last fragment as the resume token', () => {
    const merged = mergeFragments(fragments());
    expect(merged.toDocument()).toEqual(ChangeEvent.fromDocument(whole).toDocument());
    expect(merged._id).toEqual(token(3));
    expect(merged.splitEvent).toBeNull();
  });

  it('hands back an event only at its last fragment; unsplit events pass through', () => {
    const assembler = new FragmentAssembler();
    const plain = ChangeEvent.fromDocument({ _id: token(9), operationType: 'insert' });
    expect(assembler.add(plain)).toBe(plain);
    const [one, two, three] = fragments();
    expect(assembler.add(one!)).toBeNull();
    expect(assembler.partial).toBe(true);
    expect(assembler.add(two!)).toBeNull();
    expect(assembler.add(three!)?.toDocument()).toEqual(
      ChangeEvent.fromDocument(whole).toDocument(),
    );
    expect(assembler.partial).toBe(false);
  });

  it('refuses fragments out of order rather than merging parts of two events', () => {
    const assembler = new FragmentAssembler();
    const [one, , three] = fragments();
    expect(assembler.add(one!)).toBeNull();
    expect(() => assembler.add(three!)).toThrow(/fragment 3 of 3 after 1 fragment/);
    expect(() => new FragmentAssembler().add(three!)).toThrow(/out of order/);
  });

  it.each([
    [[7, 0, 0, 0], true],
    [[8, 0, 1, 0], true],
    [[6, 0, 9, 0], true],
    [[6, 0, 8, 0], false],
    [[6, 3, 1, 0], false],
    [[5, 0, 30, 0], false],
  ])('servers of version %j split large events: %s', (version, expected) => {
    expect(supportsSplitEvents(version)).toBe(expected);
  });
});
