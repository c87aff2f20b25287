import { MothershipError } from '../lib/errors.js';
import type { BatchEnvelope } from './event.js';
import { capString, storableString } from './storable.js';

export interface EnvelopeLimits {
  readonly maxMessagesPerBatch: number;
}

const MAX_SOURCE_LENGTH = 256;

/**
 * Validates the shape of one POST /ingest body. Only what makes the whole batch unusable is
 * refused here; a bad message is the normalizer's business and is rejected alone.
 * `batch_size` is ignored: it is the node's own count, and `messages.length` is the truth.
 */
export function parseEnvelope(body: unknown, limits: EnvelopeLimits): BatchEnvelope {
  if (!isPlainObject(body)) {
    throw new MothershipError(
      'invalid_envelope',
      `The body must be a JSON object like {"messages": [...]}, got ${describeType(body)}`,
    );
  }
  const messages = body['messages'];
  if (messages === undefined) {
    throw new MothershipError('invalid_envelope', 'The body has no "messages" field; expected {"messages": [...]}');
  }
  if (!Array.isArray(messages)) {
    throw new MothershipError('invalid_envelope', `"messages" must be an array, got ${describeType(messages)}`);
  }
  if (messages.length > limits.maxMessagesPerBatch) {
    throw new MothershipError(
      'too_many_messages',
      `The batch has ${messages.length} messages; the limit is ${limits.maxMessagesPerBatch}`,
    );
  }
  return {
    messages,
    source: parseSource(body['source']),
    timestamp: body['timestamp'],
    isRetry: body['is_retry'] === true,
  };
}

/** The node's name: it becomes a column, a Loki label and part of every id, so it is bounded. */
function parseSource(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const trimmed = value.trim();
  return trimmed.length === 0 ? null : storableString(capString(trimmed, MAX_SOURCE_LENGTH));
}

/** An object from JSON.parse (or an object literal): not an array, not a class instance. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** "null", "an array", "a string"… for error messages a person reads. */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  const t = typeof value;
  return t === 'object' ? 'an object' : `a ${t}`;
}
