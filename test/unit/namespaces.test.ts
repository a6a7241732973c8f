// Which collection names a whole-database relay leaves out: MongoDB's own and the temporary
// collections commands rename onto their targets (names from the server source, see namespaces.ts).
import { describe, expect, it } from 'vitest';
import {
  isInternalCollection,
  isTemporaryWrite,
  temporaryOrigin,
} from '../../src/mongo/namespaces.js';

describe('temporaryOrigin', () => {
  it.each([
    ['tmp.agg_out.0f6d2c5e-6b8d-4c4b-9d0e-2a8c1e6f7a10', '$out'],
    ['tmp.agg_out.16991', '$out'],
    ['tmpAb3Xz.renameCollection', 'cross-database rename'],
    ['tmp.mr.orders_7', 'mapReduce'],
    ['orders', null],
    ['tmp', null],
    ['tmp.agg_outx', null],
    ['tmpAb3X.renameCollection', null],
    ['tmpAb3Xz.renameCollectionX', null],
    ['mytmp.agg_out.1', null],
    [undefined, null],
  ])('%s -> %s', (name, origin) => {
    expect(temporaryOrigin(name)).toBe(origin);
  });
});

describe('isInternalCollection', () => {
  it.each([
    ['system.views', true],
    ['system.js', true],
    ['tmp.agg_out.1', true],
    ['tmpAb3Xz.renameCollection', true],
    ['systems', false],
    ['orders', false],
    ['fs.files', false],
  ])('%s -> %s', (name, internal) => {
    expect(isInternalCollection(name)).toBe(internal);
  });
});

// The one test of what the stream (relay/stream.ts) and `relay replay` leave out: both call this.
describe('isTemporaryWrite', () => {
  const out = 'tmp.agg_out.0f6d2c5e-6b8d-4c4b-9d0e-2a8c1e6f7a10';
  it.each([
    ['insert', out, null, true],
    ['update', 'tmpAb3Xz.renameCollection', null, true],
    ['replace', 'tmp.mr.orders_7', null, true],
    ['delete', out, null, true],
    ['insert', out, ['orders'], true],
    // Asked for by name: relayed whatever its name.
    ['insert', out, [out], false],
    // Its rename onto the target, or a drop after a failed $out: the relay acts on them.
    ['rename', out, null, false],
    ['drop', out, null, false],
    ['insert', 'orders', null, false],
    ['insert', undefined, null, false],
  ])('%s into %s (asked %j) -> %s', (operationType, coll, asked, left) => {
    const event = { operationType, ns: { db: 'shop', ...(coll === undefined ? {} : { coll }) } };
    expect(isTemporaryWrite(event, asked)).toBe(left);
  });
});
