/**
 * A row PostgreSQL refuses for good, inside a batch of good rows, driven through the real
 * delivery path (spool → worker → tsdb sink): only that row goes to the dead letters, every
 * other row lands, and the cursor moves on. The refusal is a CHECK constraint an operator
 * added to the events table: rows the mothership writes are otherwise valid by construction,
 * and the worker gets them back from the spool's bytes, as PostgreSQL does.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { TsdbConfig } from '../../src/config/config.js';
import { DeadLetterStore } from '../../src/deadletter/store.js';
import { SinkWorker } from '../../src/delivery/sink-worker.js';
import { createTsdbSink } from '../../src/sinks/tsdb/sink.js';
import { Spool } from '../../src/spool/spool.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { connect, databaseTargets, dropSchema, uniqueSchema } from '../helpers/database.js';
import { makeEvent, makeEvents, tempDir } from '../helpers/events.js';

const targets = await databaseTargets();
after(async () => {
  for (const target of targets) await target.close();
});

for (const target of targets) {
  describe(`poison isolation on ${target.name} PostgreSQL`, () => {
    for (const size of [40, 600]) {
      it(`isolates one refused row among ${size} (${size >= 250 ? 'COPY' : 'unnest'} path)`, async () => {
        const connection = await target.connection();
        const schema = uniqueSchema();
        const dir = await tempDir('poison-');
        const logger = silentLogger();
        const config: TsdbConfig = {
          enabled: true,
          mode: 'external',
          connection,
          schema,
          poolMax: 2,
          writeTimeoutMs: 10_000,
          chunkInterval: '1 day',
          compressAfter: null,
          retentionDays: 0,
          embedded: { dataDir: dir.dir, port: 0 },
        };
        const sink = createTsdbSink(config, connection, logger);
        const spool = await Spool.open({ dir: path.join(dir.dir, 'spool'), maxBytes: 64 * 1024 * 1024, segmentBytes: 1024 * 1024, fsync: false, memoryBytes: 1024 * 1024, cacheEvents: false, sinks: ['tsdb'], logger, now: Date.now });
        const deadLetters = await DeadLetterStore.open(path.join(dir.dir, 'dead'), 1024 * 1024, ['tsdb'], logger);
        const worker = new SinkWorker(sink, spool, deadLetters, logger, {
          window: 2,
          retryBudgetMs: 3_600_000,
          backoff: { baseMs: 1, maxMs: 10 },
          circuit: { failureThreshold: 5, openMs: 10, maxOpenMs: 100 },
          now: Date.now,
          random: () => 0.5,
        });
        try {
          await sink.start(AbortSignal.timeout(30_000));
          const admin = await connect(connection);
          try {
            await admin.query(`ALTER TABLE ${schema}.events ADD CONSTRAINT no_refused CHECK (message IS DISTINCT FROM 'refused')`);
          } finally {
            await admin.end();
          }
          worker.start();
          const events = makeEvents(0, size).map((e) => ({ ...e, receivedAtMs: Date.now() }));
          // The constraint refuses this row (SQLSTATE 23514): the kind of row no retry will ever fix.
          events[Math.floor(size / 3)] = { ...makeEvent(99_999), receivedAtMs: Date.now(), message: 'refused' };
          const seq = await spool.append(events);
          const outcome = await worker.waitFor(seq, 30_000);
          assert.ok(outcome !== null, 'delivered within the wait');
          assert.equal(outcome.written, size - 1);
          assert.deepEqual(outcome.poison.map((p) => p.position), [Math.floor(size / 3)]);
          assert.match(outcome.poison[0]?.error.message ?? '', /SQLSTATE 23514/);
          assert.equal(deadLetters.count('tsdb'), 1);
          const listed = await deadLetters.list('tsdb', 0, 10);
          assert.equal(listed.items[0]?.event.id, makeEvent(99_999).id);
          const client = await connect(connection);
          try {
            const { rows } = await client.query(`SELECT count(*)::int AS n FROM ${schema}.events`);
            assert.equal(rows[0]?.n, size - 1);
          } finally {
            await client.end();
          }
          assert.equal(spool.ackedSeq('tsdb'), seq);
        } finally {
          await worker.drainAndStop(1000);
          await spool.close();
          await sink.shutdown();
          await dropSchema(connection, schema);
          await dir.remove();
        }
      });
    }
  });
}
