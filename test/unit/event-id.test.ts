import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { eventId, uuidFromHex } from '../../src/pipeline/event-id.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The rule as the README states it, computed independently of the module. */
function documented(parts: readonly string[]): string {
  const text = parts.map((p) => `${p.length}:${p}`).join('');
  const hex = createHash('sha256').update(text, 'utf8').digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

describe('eventId', () => {
  test('follows the documented encoding for each rule', () => {
    assert.equal(eventId('spool', 'edgebot', 'sp-17', null), documented(['spool', 'edgebot', 'sp-17']));
    assert.equal(eventId('key', 'edgebot', 'batch-9', 3), documented(['key', 'edgebot', 'batch-9', '3']));
    assert.equal(eventId('content', '', '{"a":1}', 0), documented(['content', '', '{"a":1}', '0']));
    assert.equal(eventId('content', 'n\u00e9', '{"m":"😀"}', 12), documented(['content', 'n\u00e9', '{"m":"😀"}', '12']));
  });

  test('a fixed vector, so a change of rule cannot go unnoticed', () => {
    // sha256("5:spool7:edgebot5:sp-17") = 3edaf1b01d8b78ac682a940aa711af1e58ff…
    assert.equal(eventId('spool', 'edgebot', 'sp-17', null), '3edaf1b0-1d8b-78ac-682a-940aa711af1e');
  });

  test('is a lowercase 8-4-4-4-12 hex string and deterministic', () => {
    const a = eventId('content', 'node', '{"message":"x"}', 0);
    assert.match(a, UUID_RE);
    assert.equal(eventId('content', 'node', '{"message":"x"}', 0), a);
  });

  test('every part matters, and the parts cannot run into each other', () => {
    const ids = [
      eventId('key', 'ab', 'c', 1),
      eventId('key', 'a', 'bc', 1),
      eventId('key', 'a', 'b', 11),
      eventId('key', 'a', 'b1', 1),
      eventId('content', 'ab', 'c', 1),
      eventId('content', 'ab', 'c', 2),
      eventId('content', 'other', 'c', 1),
      eventId('spool', 'ab', 'c', null),
      eventId('spool', 'ab', 'c1', null),
      eventId('spool', 'a', 'bc', null),
      eventId('spool', '', 'abc', null),
    ];
    assert.equal(new Set(ids).size, ids.length);
  });

  test('uuidFromHex takes the first 16 bytes', () => {
    assert.equal(uuidFromHex('00112233445566778899aabbccddeeff0123456789abcdef'), '00112233-4455-6677-8899-aabbccddeeff');
  });
});
