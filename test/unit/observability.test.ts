import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { App } from '../../src/app.js';
import { MAX_TRACKED_NODES, Metrics, OTHER_NODE } from '../../src/telemetry/metrics.js';
import { appFixture } from '../helpers/app.js';
import { MemorySink } from '../helpers/memory-sink.js';
import { envelope } from '../helpers/samples.js';

const buildApp = appFixture('metrics-test-');

async function build(sink = new MemorySink()): Promise<App> {
  return (await buildApp({ SHUTDOWN_TIMEOUT_MS: '500' }, sink)).app;
}

function sample(text: string, series: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return null;
}

test('/metrics counts requests, messages, sink results and per-node activity, with bounded labels', async () => {
  const sink = new MemorySink();
  sink.poison = /poison/;
  const app = await build(sink);
  const body = JSON.stringify(envelope([{ message: 'a' }, { message: 'poison' }, 7], 'edge-07'));
  const post = (payload: string) => app.http.inject({ method: 'POST', url: '/ingest', headers: { 'content-type': 'application/json' }, payload });
  assert.equal((await post(body)).statusCode, 200);
  assert.equal((await post(body)).statusCode, 200);
  assert.equal((await post('{oops')).statusCode, 400);
  const res = await app.http.inject({ method: 'GET', url: '/metrics' });
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /text\/plain/);
  const text = res.body;
  assert.equal(sample(text, 'mothership_ingest_requests_total{status="200",error_code=""}'), 2);
  assert.equal(sample(text, 'mothership_ingest_requests_total{status="400",error_code="invalid_json"}'), 1);
  assert.equal(sample(text, 'mothership_messages_total{outcome="received"}'), 6);
  assert.equal(sample(text, 'mothership_messages_total{outcome="rejected"}'), 4);
  assert.equal(sample(text, 'mothership_messages_total{outcome="duplicate"}'), 1);
  assert.equal(sample(text, 'mothership_sink_events_total{sink="tsdb",result="written"}'), 1);
  assert.equal(sample(text, 'mothership_sink_events_total{sink="tsdb",result="dead_lettered"}'), 2);
  assert.equal(sample(text, 'mothership_sink_backlog_events{sink="tsdb"}'), 0);
  assert.equal(sample(text, 'mothership_sink_circuit_state{sink="tsdb"}'), 0);
  assert.equal(sample(text, 'mothership_node_messages_total{node="edge-07"}'), 4);
  assert.ok((sample(text, 'mothership_spool_bytes') ?? 0) > 0);
  assert.ok(text.includes('process_resident_memory_bytes'));
});

test('per-node series stop growing at the cap; the rest share one series', async () => {
  const app = await build();
  for (let i = 0; i < MAX_TRACKED_NODES + 5; i++) {
    const res = await app.http.inject({ method: 'POST', url: '/ingest', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(envelope([{ message: `m${i}` }], `node-${i}`)) });
    assert.equal(res.statusCode, 200);
  }
  const text = (await app.http.inject({ method: 'GET', url: '/metrics' })).body;
  const series = text.split('\n').filter((l) => l.startsWith('mothership_node_messages_total{'));
  assert.equal(series.length, MAX_TRACKED_NODES + 1);
  assert.equal(sample(text, `mothership_node_messages_total{node="${OTHER_NODE}"}`), 5);
});

test('/livez and /readyz', async () => {
  const app = await build();
  assert.equal((await app.http.inject({ method: 'GET', url: '/livez' })).statusCode, 200);
  const ready = await app.http.inject({ method: 'GET', url: '/readyz' });
  assert.equal(ready.statusCode, 200);
  assert.equal(ready.json().status, 'ready');
});

test('mothership_tsdb_writes_total follows the tsdb writer\'s path counts, one series per path', async () => {
  const paths = { copy: 0, conflicts: 0, skipDuplicates: 0 };
  const metrics = new Metrics({ spoolUp: () => 1,
      spoolBytes: () => 0, sinks: () => [], inflightBytes: () => 0, tsdbWritePaths: () => paths }, { defaultMetrics: false });
  paths.copy = 7;
  paths.conflicts = 1;
  paths.skipDuplicates = 2;
  let text = await metrics.registry.metrics();
  assert.equal(sample(text, 'mothership_tsdb_writes_total{path="copy"}'), 7);
  assert.equal(sample(text, 'mothership_tsdb_writes_total{path="conflicts"}'), 1);
  assert.equal(sample(text, 'mothership_tsdb_writes_total{path="skip_duplicates"}'), 2);
  paths.copy = 9;
  text = await metrics.registry.metrics();
  assert.equal(sample(text, 'mothership_tsdb_writes_total{path="copy"}'), 9);
  assert.equal(sample(text, 'mothership_tsdb_writes_total{path="skip_duplicates"}'), 2);
});
