/**
 * Write throughput of the tsdb sink's bulk paths against a real PostgreSQL:
 *   copy-staging  COPY into a temp table, then INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING id
 *                 (the sink's conflict path for large batches)
 *   unnest        INSERT … SELECT FROM unnest($1::timestamptz[], …) ON CONFLICT DO NOTHING RETURNING id
 *                 (the sink's conflict path for small batches)
 *   raw-copy      COPY straight into the table, no conflict handling: the ceiling
 *   sink-default  what the sink does with new rows: a plain COPY (a conflict-safe path only when a
 *                 row is already stored, which never happens here)
 * Each method × batch size writes into a fresh schema (migrated like the sink does), one
 * connection, batches sent back to back (at most 2,000 batches per size). Prints rows/s;
 * asserts nothing.
 *
 *   npx tsc -p . && node dist/bench/tsdb-write.js
 *   BENCH_DATABASE_URL=postgres://… BENCH_ROWS=200000 BENCH_BATCHES=100,1000 node dist/bench/tsdb-write.js
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { IngestEvent } from '../src/pipeline/event.js';
import { batchOf } from '../src/sinks/sink.js';
import { migrate, quoteIdent } from '../src/sinks/tsdb/migrations.js';
import { COPY_COLUMNS } from '../src/pipeline/copy-text.js';
import { TsdbWriter, copyChunks } from '../src/sinks/tsdb/writer.js';
import { silentLogger } from '../src/telemetry/logger.js';

const URL_ = process.env['BENCH_DATABASE_URL'] ?? process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROWS = Number(process.env['BENCH_ROWS'] ?? 200_000);
const BATCHES = (process.env['BENCH_BATCHES'] ?? '1,10,100,1000').split(',').map(Number);
const METHODS = (process.env['BENCH_METHODS'] ?? 'copy-staging,unnest,sink-default,raw-copy').split(',');

const HOSTS = ['switch01', 'router01', 'ap01', 'firewall01', 'server01', 'web01', 'db01'];
const METRICS = ['ifInOctets', 'ifOutOctets', 'hrProcessorLoad', 'sysUpTime', 'diskUsage', 'powerConsumption'];
const PROGRAMS = ['nginx', 'mysql', 'app-server', 'sshd', 'kernel'];

/** SNMP-like metrics and syslog-like lines, shaped like the EdgeBot samples in test/fixtures/samples. */
function makeEvents(count: number): IngestEvent[] {
  const events: IngestEvent[] = [];
  const start = Date.UTC(2025, 7, 22, 17, 0, 0);
  for (let i = 0; i < count; i++) {
    const host = HOSTS[i % HOSTS.length]!;
    const timeMs = start + i * 37;
    let data: Record<string, unknown>;
    let message: string | null = null;
    let severity: string | null = null;
    let service: string | null;
    if (i % 3 === 0) {
      service = PROGRAMS[i % PROGRAMS.length]!;
      severity = i % 7 === 0 ? 'warning' : 'info';
      message = `192.168.1.${i % 250} - - [22/Aug/2025:17:11:27 +0000] "GET /api/status?id=${i} HTTP/1.1" 200 ${i % 900}\t"curl/8.0"`;
      data = { timestamp: new Date(timeMs).toISOString(), host, facility: 'local0', severity: 6, program: service, pid: 1000 + (i % 50), message };
    } else {
      service = 'snmp';
      const metric = METRICS[i % METRICS.length]!;
      data = {
        timestamp: new Date(timeMs).toISOString(), host, oid: `1.3.6.1.2.1.${i % 30}.${i % 11}.${i % 17}`, metric_name: metric,
        value: (i * 7919) % 1_000_000, unit: metric.startsWith('if') ? 'bytes' : '%', interface: `eth${i % 4}`, community: 'public', snmp_version: '2c',
      };
    }
    events.push({
      id: randomUUID(), timeMs, timeNanos: (i * 1013) % 1_000_000, receivedAtMs: timeMs + 1500,
      source: `edge-${i % 5}`, type: service === 'snmp' ? 'snmp' : 'syslog', service, host, severity, message,
      data, dataJson: JSON.stringify(data),
    });
  }
  return events;
}

async function rawCopy(pool: pg.Pool, schema: string, batch: readonly IngestEvent[]): Promise<void> {
  const client = await pool.connect();
  try {
    await pipeline(Readable.from(copyChunks(batch)), client.query(copyFrom(`COPY ${quoteIdent(schema)}.events (${COPY_COLUMNS}) FROM STDIN`)));
  } finally {
    client.release();
  }
}

async function run(method: string, batchSize: number, events: readonly IngestEvent[]): Promise<number> {
  const pool = new pg.Pool({ connectionString: URL_, max: 1, application_name: 'mothership-bench' });
  const schema = `bench_${method.replace('-', '_')}_${batchSize}_${process.pid}`;
  try {
    const client = await pool.connect();
    try {
      await client.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
      await migrate(client, { schema, chunkInterval: '1 day', compressAfter: null, retentionDays: 0 }, silentLogger());
    } finally {
      client.release();
    }
    const copyThreshold = method === 'unnest' ? Number.POSITIVE_INFINITY : method === 'copy-staging' ? 0 : undefined;
    const writer = new TsdbWriter(pool, { schema, timeoutMs: 600_000, optimistic: method === 'sink-default', ...(copyThreshold === undefined ? {} : { copyThreshold }) });
    const t0 = performance.now();
    let inserted = 0;
    for (let i = 0; i < events.length; i += batchSize) {
      const batch = events.slice(i, i + batchSize);
      if (method === 'raw-copy') {
        await rawCopy(pool, schema, batch);
        inserted += batch.length;
      } else {
        inserted += (await writer.write(batchOf(batch))).inserted;
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    if (inserted !== events.length) throw new Error(`${method}: inserted ${inserted} of ${events.length}`);
    return events.length / seconds;
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`).catch(() => undefined);
    await pool.end();
  }
}

async function main(): Promise<void> {
  const events = makeEvents(ROWS);
  const bytes = events.reduce((sum, e) => sum + e.dataJson.length + (e.message?.length ?? 0), 0);
  console.log(`tsdb write bench: ${ROWS} events (~${Math.round(bytes / ROWS)} B of data+message each) → ${URL_.replace(/\/\/[^@/]*@/, '//')}`);
  const probe = new pg.Client({ connectionString: URL_ });
  await probe.connect();
  const version = (await probe.query<{ v: string }>('SELECT version() AS v')).rows[0]?.v ?? '?';
  await probe.end();
  console.log(`  server: ${version.split(' on ')[0] ?? version}`);
  const results: Array<{ method: string; batch: number; rowsPerSecond: number }> = [];
  for (const batch of BATCHES) {
    for (const method of METHODS) {
      // Tiny batches are bounded by round trips, not rows: 2,000 batches tell as much as 200,000.
      const rowsPerSecond = await run(method, batch, events.slice(0, Math.min(events.length, batch * 2_000)));
      results.push({ method, batch, rowsPerSecond });
      console.log(`  ${method.padEnd(13)} batch ${String(batch).padStart(5)}: ${Math.round(rowsPerSecond).toLocaleString('en-US').padStart(9)} rows/s`);
    }
  }
  for (const batch of BATCHES) {
    const ceiling = results.find((r) => r.method === 'raw-copy' && r.batch === batch)?.rowsPerSecond;
    if (ceiling === undefined) continue;
    const rel = results.filter((r) => r.batch === batch && r.method !== 'raw-copy' && r.method !== 'sink-default')
      .map((r) => `${r.method} ${Math.round((100 * r.rowsPerSecond) / ceiling)}%`).join(', ');
    console.log(`  batch ${batch}: of the raw COPY ceiling: ${rel}`);
  }
}

await main();
