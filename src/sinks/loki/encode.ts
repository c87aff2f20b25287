import protobuf from 'protobufjs';
import snappy from 'snappyjs';
import { formatEpochNanos } from '../../pipeline/time.js';
import { groupStreams, type LokiEntry } from './batch.js';

/**
 * Loki's push request (grafana/loki pkg/push/push.proto), declared through protobufjs'
 * reflection API so no generated code is needed:
 *   PushRequest    { repeated StreamAdapter streams = 1; }
 *   StreamAdapter  { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
 *   EntryAdapter   { google.protobuf.Timestamp timestamp = 1; string line = 2;
 *                    repeated LabelPairAdapter structuredMetadata = 3; }
 *   LabelPairAdapter { string name = 1; string value = 2; }
 * `hash` is left unset (0): Loki computes it from the labels itself.
 */
const root = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Timestamp: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
          },
        },
      },
    },
    logproto: {
      nested: {
        PushRequest: { fields: { streams: { rule: 'repeated', type: 'StreamAdapter', id: 1 } } },
        StreamAdapter: {
          fields: {
            labels: { type: 'string', id: 1 },
            entries: { rule: 'repeated', type: 'EntryAdapter', id: 2 },
            hash: { type: 'uint64', id: 3 },
          },
        },
        LabelPairAdapter: { fields: { name: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
        EntryAdapter: {
          fields: {
            timestamp: { type: 'google.protobuf.Timestamp', id: 1 },
            line: { type: 'string', id: 2 },
            structuredMetadata: { rule: 'repeated', type: 'LabelPairAdapter', id: 3 },
          },
        },
      },
    },
  },
});

const PushRequest = root.lookupType('logproto.PushRequest');

export type LokiEncoding = 'protobuf' | 'json';

export interface EncodedPush {
  readonly body: Uint8Array;
  readonly contentType: string;
}

export const PROTOBUF_CONTENT_TYPE = 'application/x-protobuf';
export const JSON_CONTENT_TYPE = 'application/json';

export function encodePush(entries: readonly LokiEntry[], encoding: LokiEncoding): EncodedPush {
  return encoding === 'json' ? encodeJson(entries) : encodeProtobuf(entries);
}

/** Snappy *block* format (what Loki's `util.RawSnappy` reads), not the framed stream format. */
export function encodeProtobuf(entries: readonly LokiEntry[]): EncodedPush {
  const message = {
    streams: groupStreams(entries).map((stream) => ({
      labels: stream.labelsText,
      entries: stream.entries.map((e) => ({
        timestamp: { seconds: Math.floor(e.timeMs / 1000), nanos: (e.timeMs % 1000) * 1_000_000 + e.timeNanos },
        line: e.line,
        structuredMetadata: e.metadata.map(([name, value]) => ({ name, value })),
      })),
    })),
  };
  const raw = PushRequest.encode(message).finish();
  return { body: snappy.compress(raw), contentType: PROTOBUF_CONTENT_TYPE };
}

/**
 * `{"streams":[{"stream":{"source":"ship-7"},"values":[["<ns>","<line>",{"trace_id":"…"}]]}]}`:
 * the third element of a value (structured metadata) only when the entry has some.
 */
export function encodeJson(entries: readonly LokiEntry[]): EncodedPush {
  const streams = groupStreams(entries).map((stream) => ({
    stream: Object.fromEntries(stream.labels),
    values: stream.entries.map((e) => {
      const ts = formatEpochNanos(e.timeMs, e.timeNanos);
      return e.metadata.length === 0 ? [ts, e.line] : [ts, e.line, Object.fromEntries(e.metadata)];
    }),
  }));
  return { body: Buffer.from(JSON.stringify({ streams }), 'utf8'), contentType: JSON_CONTENT_TYPE };
}
