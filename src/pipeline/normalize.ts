import { describeType, isPlainObject } from './envelope.js';
import { eventId } from './event-id.js';
import type { BatchEnvelope, IngestEvent, NormalizedBatch, RejectedMessage } from './event.js';
import { normalizeSeverity } from './severity.js';
import { capString, needsRepair, repairValue } from './storable.js';
import { parseEventTime } from './time.js';
import type { EventTime } from './time.js';

export interface NormalizeContext {
  /** When the batch arrived, ms since epoch: the time of messages that carry none. */
  readonly receivedAtMs: number;
  /** The request's `Idempotency-Key` header, or null. */
  readonly idempotencyKey: string | null;
  /** Deepest nesting of objects/arrays allowed in one message; the message itself is depth 1. */
  readonly maxJsonDepth: number;
  /** Most object keys in one message, counted at every depth. Default: no limit. */
  readonly maxKeysPerMessage?: number;
  /** Longest string (value or key) in one message, in UTF-8 bytes. Default: no limit. */
  readonly maxStringBytes?: number;
  /**
   * The authenticated node (token binding or client certificate), or null. When set it is the
   * events' `source` and the `node` of their ids, whatever the envelope claims; a different
   * claimed `source` is kept in the data as `claimed_source`. Default: null.
   */
  readonly node?: string | null;
}

/** Key of the data field that keeps an envelope `source` the authenticated node does not match. */
export const CLAIMED_SOURCE_KEY = 'claimed_source';

const MAX_LABEL_LENGTH = 256;
const UNDERSCORE = 95;

/**
 * Turns every message of a validated envelope into an IngestEvent, or rejects it alone.
 * Runs for every message, so: plain loops, no closures per message, one object shape.
 */
export function normalizeBatch(envelope: BatchEnvelope, ctx: NormalizeContext): NormalizedBatch {
  const messages = envelope.messages;
  const events: IngestEvent[] = [];
  const rejected: RejectedMessage[] = [];
  const authenticated = ctx.node ?? null;
  const source = authenticated ?? envelope.source;
  const node = source ?? '';
  const claimed = authenticated !== null && envelope.source !== null && envelope.source !== authenticated ? envelope.source : null;
  const limits: ShapeLimits = {
    maxDepth: ctx.maxJsonDepth,
    maxKeys: ctx.maxKeysPerMessage ?? Number.POSITIVE_INFINITY,
    maxStringBytes: ctx.maxStringBytes ?? Number.POSITIVE_INFINITY,
  };
  const key = ctx.idempotencyKey !== null && ctx.idempotencyKey.length > 0 ? ctx.idempotencyKey : null;
  const receivedAtMs = Math.floor(ctx.receivedAtMs);
  // Per batch, not per message: the envelope time is the same for all of them.
  const fallbackTime: EventTime = parseEventTime(envelope.timestamp) ?? { ms: receivedAtMs, nanos: 0 };
  const shapeScratch: ShapeScratch = { items: [], depths: [] };
  // Rule 3 of the id: first id of a content → how many times that content was seen in this
  // batch. Keyed by the id (36 chars) rather than the JSON, which may be kilobytes long.
  let seen: Map<string, number> | null = null;

  for (let i = 0; i < messages.length; i++) {
    const raw = messages[i];
    let original: Record<string, unknown>;
    if (typeof raw === 'string') {
      if (tooLong(raw, limits.maxStringBytes)) {
        rejected.push(shapeRejection(i, 'string', limits));
        continue;
      }
      original = { message: raw };
    } else if (isPlainObject(raw)) {
      original = raw;
    } else {
      rejected.push({
        index: i,
        error: 'message_not_object',
        message: `Message ${i} is ${describeType(raw)}; expected a JSON object or a string`,
      });
      continue;
    }
    const problem = shapeProblem(original, limits, shapeScratch);
    if (problem !== null) {
      rejected.push(shapeRejection(i, problem, limits));
      continue;
    }

    const spoolId = original['__spool_id'];
    let data = withoutInternalKeys(original);
    let dataJson = JSON.stringify(data);
    if (needsRepair(dataJson)) {
      data = repairValue(data) as Record<string, unknown>;
      dataJson = JSON.stringify(data);
    }

    const time =
      parseEventTime(data['timestamp']) ??
      parseEventTime(data['@timestamp']) ??
      parseEventTime(data['time']) ??
      parseEventTime(data['ts']) ??
      fallbackTime;

    let id: string;
    if ((typeof spoolId === 'string' && spoolId.length > 0) || (typeof spoolId === 'number' && Number.isFinite(spoolId))) {
      id = eventId('spool', node, String(spoolId), null);
    } else if (key !== null) {
      id = eventId('key', node, key, i);
    } else {
      id = eventId('content', node, dataJson, 0);
      seen ??= new Map();
      const occurrence = seen.get(id) ?? 0;
      seen.set(id, occurrence + 1);
      // Identical messages are rare, so the second hash is too.
      if (occurrence > 0) id = eventId('content', node, dataJson, occurrence);
    }
    if (claimed !== null) {
      // After the id: a node's id does not depend on what it claims to be.
      data = { ...data, [CLAIMED_SOURCE_KEY]: claimed };
      dataJson = JSON.stringify(data);
    }

    events.push({
      id,
      timeMs: time.ms,
      timeNanos: time.nanos,
      receivedAtMs,
      source,
      type: label(data['type']),
      service: label(data['service']) ?? label(data['program']) ?? label(data['app_name']) ?? label(data['tag']),
      host: label(data['host']) ?? label(data['hostname']),
      severity:
        normalizeSeverity(data['severity']) ??
        normalizeSeverity(data['level']) ??
        normalizeSeverity(data['severity_code']),
      message: text(data['message']) ?? text(data['raw_message']) ?? text(data['msg']),
      data,
      dataJson,
    });
  }
  return { events, rejected, received: messages.length };
}

/**
 * A label-like column (type, service, host): trimmed, capped, numbers as text, empty → null.
 * `v` comes from repaired data, so it is already storable; capString keeps it so.
 */
function label(v: unknown): string | null {
  if (typeof v === 'string') {
    const t = v.trim();
    return t.length === 0 ? null : capString(t, MAX_LABEL_LENGTH);
  }
  return typeof v === 'number' && Number.isFinite(v) ? String(v) : null;
}

/** The message column is the log line itself: kept exactly, whatever its length. */
function text(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/**
 * Keys starting with "_" are the node's bookkeeping (`__spool_id`, `_internal`), not data.
 * The message object is reused when it has none, which is the common case.
 */
function withoutInternalKeys(message: Record<string, unknown>): Record<string, unknown> {
  let internal = false;
  for (const k in message) {
    if (k.charCodeAt(0) === UNDERSCORE) {
      internal = true;
      break;
    }
  }
  if (!internal) return message;
  // No kept key starts with "_", so none is "__proto__" and plain assignment is safe.
  const out: Record<string, unknown> = {};
  for (const k in message) {
    if (k.charCodeAt(0) !== UNDERSCORE) out[k] = message[k];
  }
  return out;
}

interface ShapeScratch {
  readonly items: object[];
  readonly depths: number[];
}

interface ShapeLimits {
  readonly maxDepth: number;
  readonly maxKeys: number;
  readonly maxStringBytes: number;
}

type ShapeProblem = 'deep' | 'keys' | 'string';

function shapeRejection(index: number, problem: ShapeProblem, limits: ShapeLimits): RejectedMessage {
  switch (problem) {
    case 'deep':
      return { index, error: 'message_too_deep', message: `Message ${index} is nested deeper than ${limits.maxDepth} levels` };
    case 'keys':
      return { index, error: 'message_too_many_keys', message: `Message ${index} has more than ${limits.maxKeys} object keys (MAX_KEYS_PER_MESSAGE)` };
    case 'string':
      return { index, error: 'message_string_too_long', message: `Message ${index} holds a string longer than ${limits.maxStringBytes} bytes (MAX_STRING_BYTES)` };
  }
}

/** True when `s` is over `maxBytes` in UTF-8. A UTF-16 unit is at most 3 UTF-8 bytes, so short strings skip the count. */
function tooLong(s: string, maxBytes: number): boolean {
  return s.length * 3 > maxBytes && Buffer.byteLength(s, 'utf8') > maxBytes;
}

/**
 * The first limit a message breaks: an object/array deeper than `maxDepth` (the message is
 * depth 1), more than `maxKeys` object keys in all, or a string (value or key) longer than
 * `maxStringBytes`. Iterative with an explicit stack, and it stops at the first problem, so a
 * message nested 100k levels costs `maxDepth` steps and never the call stack.
 */
function shapeProblem(root: object, limits: ShapeLimits, scratch: ShapeScratch): ShapeProblem | null {
  const { maxDepth, maxKeys, maxStringBytes } = limits;
  if (maxDepth < 1) return 'deep';
  const items = scratch.items;
  const depths = scratch.depths;
  // Left non-empty only by an early return; truncating an empty array is not free.
  if (items.length > 0) {
    items.length = 0;
    depths.length = 0;
  }
  let keys = 0;
  let node: object = root;
  let depth = 1;
  for (;;) {
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const problem = visitValue(node[i], depth, limits, scratch);
        if (problem !== null) return problem;
      }
    } else {
      const obj = node as Record<string, unknown>;
      for (const k in obj) {
        if (++keys > maxKeys) return 'keys';
        if (tooLong(k, maxStringBytes)) return 'string';
        const problem = visitValue(obj[k], depth, limits, scratch);
        if (problem !== null) return problem;
      }
    }
    const next = items.pop();
    if (next === undefined) return null;
    node = next;
    depth = depths.pop() ?? depth;
  }
}

/** One value met at `depth`: containers are queued for the walk, strings measured. */
function visitValue(v: unknown, depth: number, limits: ShapeLimits, scratch: ShapeScratch): ShapeProblem | null {
  if (typeof v === 'object' && v !== null) {
    if (depth >= limits.maxDepth) return 'deep';
    scratch.items.push(v);
    scratch.depths.push(depth + 1);
  } else if (typeof v === 'string' && tooLong(v, limits.maxStringBytes)) {
    return 'string';
  }
  return null;
}
