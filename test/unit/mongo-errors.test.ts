// MongoDB errors in the relay's terms: which pass (retried) and which a person must act on, with
// the sentence that says what to do. Messages and codes as real servers send them
// (notes/mongodb-wire-protocol.md §6; server error_codes.yml, resume_token.cpp,
// document_source_change_stream_*.cpp).
import { describe, expect, it } from 'vitest';
import {
  MongoNetworkError,
  MongoServerError,
  MongoServerSelectionError,
  type TopologyDescription,
} from 'mongodb';
import { ConfigError, RelayError, TransientError } from '../../src/errors.js';
import { explainMongoError, isTransientMongoError } from '../../src/mongo/errors.js';

function serverError(code: number, errmsg: string, errorLabels: string[] = []): MongoServerError {
  return new MongoServerError({ ok: 0, code, errmsg, errorLabels });
}

/** The driver's view when no server answers: one of an unknown type. */
const noServer = { type: 'Unknown', servers: new Map() } as unknown as TopologyDescription;

describe('isTransientMongoError', () => {
  it.each([
    ['a labelled resumable error', serverError(1, 'x', ['ResumableChangeStreamError']), true],
    ['a labelled retryable write', serverError(1, 'x', ['RetryableWriteError']), true],
    ['shutdown without labels (a fail point)', serverError(11600, 'x'), true],
    ['a step-down without labels', serverError(11602, 'x'), true],
    ['a lost cursor', serverError(43, 'cursor id 7 not found'), true],
    ['a killed query plan', serverError(175, 'x'), true],
    ['a network error', new MongoNetworkError('connection 3 closed'), true],
    ['EPIPE from a closed socket', Object.assign(new Error('ended'), { code: 'EPIPE' }), true],
    // What connecting to a server that is down or not started yet fails with: waited for at start.
    [
      'no server selected',
      new MongoServerSelectionError('connect ECONNREFUSED 127.0.0.1:27017', noServer),
      true,
    ],
    // Credentials refused (error_codes.yml AuthenticationFailed, Unauthorized): no wait helps.
    ['authentication failed', serverError(18, 'Authentication failed.'), false],
    ['not authorized', serverError(13, 'not authorized on admin to execute command'), false],
    ['lost history', serverError(286, 'x'), false],
    ['a bad stage', serverError(40324, 'x'), false],
    ['an event over 16 MB', serverError(10334, 'x'), false],
  ])('%s: %s', (_, error, transient) => {
    expect(isTransientMongoError(error)).toBe(transient);
  });
});

describe('explainMongoError', () => {
  it.each([
    [
      serverError(280, 'cannot resume stream; the resume token was not found. {_data: "8263..."}'),
      RelayError,
      /did not find the checkpoint's resume token.*--filter changed.*restored from a backup.*relay_checkpoints/,
    ],
    [
      serverError(
        280,
        'Encountered an event whose _id field, which contains the resume token, was modified by the pipeline.',
      ),
      ConfigError,
      /--filter must keep each event's _id/,
    ],
    [
      serverError(9, "resume token string was not a valid hex string: 'zz'"),
      RelayError,
      /resume token this MongoDB cannot use \(error 9.*relay_checkpoints/,
    ],
    [
      serverError(40647, "Expected resume token to have a '_data' field"),
      RelayError,
      /resume token this MongoDB cannot use \(error 40647/,
    ],
    [serverError(9, 'unknown operator: $foo'), ConfigError, /--filter is not a valid pipeline/],
    [
      serverError(
        10334,
        'BSONObj size: 20971600 (0x1400050) is invalid. Size must be between 0 and 16793600(16MB) First element: _id: { _data: "8265A1" }',
      ),
      RelayError,
      /change event of shop\.orders is larger than MongoDB's 16 MB limit \(error 10334: .*First element: _id: \{ _data: "8265A1" \}\).*upgrade MongoDB to 6\.0\.9\+ or 7\.0.*shrink that document.*--full-document patch.*--filter that projects out/,
    ],
    [
      serverError(
        47,
        'Change stream was configured to require a post-image for all update events, but the post-image was not found for event',
      ),
      ConfigError,
      /--full-document required: .*changeStreamPreAndPostImages.*updateLookup or whenAvailable/,
    ],
    [
      serverError(20, '$group is not permitted in a $changeStream pipeline'),
      ConfigError,
      /--filter has a stage a change stream does not allow.*\$match/,
    ],
    [serverError(11600, 'interrupted at shutdown'), TransientError, /shop\.orders/],
    [serverError(8000, 'something else'), RelayError, /code 8000/],
  ])('%#: error %s', (error, type, sentence) => {
    const explained = explainMongoError(error, 'shop.orders');
    expect(explained).toBeInstanceOf(type);
    if (type === RelayError) expect(explained).not.toBeInstanceOf(TransientError);
    expect((explained as Error).message).toMatch(sentence);
  });
});
