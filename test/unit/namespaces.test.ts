// Which collection names a whole-database relay leaves out: MongoDB's own and the temporary
// collections commands rename onto their targets (names from the server source, see namespaces.ts).
import { describe, expect, it } from 'vitest';
import { isInternalCollection, temporaryOrigin } from '../../src/mongo/namespaces.js';

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
