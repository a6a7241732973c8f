// Which collection names a whole-database relay leaves out: MongoDB's own, the temporary
// collections commands rename onto their targets and Queryable Encryption's state collections
// (names from the server source, see namespaces.ts).
import { describe, expect, it } from 'vitest';
import {
  isEncryptionState,
  isInternalCollection,
  isLeftOutWrite,
  leftOutBecause,
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

// NamespaceString::isFLE2StateCollection (src/mongo/db/namespace_string.cpp): prefix `enxcol_.`,
// suffix `.esc`, `.ecc`, `.ecoc` or `.ecoc.compact`; drivers name them `enxcol_.<coll>.<suffix>`
// (the client-side encryption specification's createEncryptedCollection).
describe('isEncryptionState', () => {
  it.each([
    ['enxcol_.patients.esc', true],
    ['enxcol_.patients.ecoc', true],
    ['enxcol_.patients.ecc', true],
    ['enxcol_.patients.ecoc.compact', true],
    ['enxcol_.a.b.esc', true],
    ['enxcol_.patients', false],
    ['enxcol_.patients.escx', false],
    ['enxcol_patients.esc', false],
    ['patients.esc', false],
    ['xenxcol_.patients.esc', false],
  ])('%s -> %s', (name, state) => {
    expect(isEncryptionState(name)).toBe(state);
  });
});

describe('isInternalCollection', () => {
  it.each([
    ['enxcol_.patients.esc', true],
    ['enxcol_.patients.ecoc', true],
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

// The one test of what the stream (relay/context.ts) and `relay replay` leave out: both call this.
describe('isLeftOutWrite', () => {
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
    ['insert', 'enxcol_.patients.esc', null, true],
    ['update', 'enxcol_.patients.ecoc', null, true],
    ['delete', 'enxcol_.patients.ecoc', ['patients'], true],
    ['insert', 'enxcol_.patients.esc', ['enxcol_.patients.esc'], false],
    ['drop', 'enxcol_.patients.ecoc', null, false],
    ['insert', 'orders', null, false],
    ['insert', 'patients', null, false],
    ['insert', undefined, null, false],
  ])('%s into %s (asked %j) -> %s', (operationType, coll, asked, left) => {
    const event = { operationType, ns: { db: 'shop', ...(coll === undefined ? {} : { coll }) } };
    expect(isLeftOutWrite(event, asked)).toBe(left);
  });
});

describe('leftOutBecause', () => {
  it.each([
    ['tmp.agg_out.1', /^MongoDB's temporary collection of \$out, whose documents are copied when/],
    ['tmpAb3Xz.renameCollection', /temporary collection of cross-database rename/],
    ['enxcol_.patients.esc', /^a Queryable Encryption state collection: .* not user data$/],
    ['system.views', /^MongoDB's own collection$/],
  ])('%s', (name, reason) => {
    expect(leftOutBecause(name)).toMatch(reason);
  });

  it('gives no reason for a collection that is relayed', () => {
    expect(leftOutBecause('patients')).toBeNull();
  });
});
