import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { classifyTsdbError } from '../../src/sinks/tsdb/sink.js';
import { compareVersions, MIN_TIMESCALEDB, planTimescale, preloadList, TESTED_TIMESCALEDB, type TimescaleInfo } from '../../src/sinks/tsdb/timescale.js';

const offered: TimescaleInfo = {
  available: true, defaultVersion: TESTED_TIMESCALEDB, installed: false, version: null, schema: null,
  preloaded: true, database: 'telemetry', configFile: '/etc/postgresql/15/main/postgresql.conf',
};
const installed = (version: string, more: Partial<TimescaleInfo> = {}): TimescaleInfo => ({ ...offered, installed: true, version, schema: 'public', ...more });

describe('what the sink does with the TimescaleDB a server offers', () => {
  it('creates it when it is offered and preloaded, uses it when installed', () => {
    assert.deepEqual(planTimescale(offered, false), { action: 'create' });
    assert.deepEqual(planTimescale(installed(TESTED_TIMESCALEDB), true), { action: 'use', note: null });
  });

  it('stays plain, quietly, when the server has no TimescaleDB', () => {
    assert.deepEqual(planTimescale({ ...offered, available: false, defaultVersion: null }, false), { action: 'plain', reason: 'not_available', fix: null });
  });

  it('installed but not preloaded: plain with the exact fix naming the configuration file; refused when the table is a hypertable', () => {
    const plan = planTimescale({ ...offered, preloaded: false }, false);
    assert.equal(plan.action, 'plain');
    assert.equal(plan.action === 'plain' ? plan.reason : '', 'not_preloaded');
    assert.match(plan.action === 'plain' ? plan.fix ?? '' : '', /shared_preload_libraries in \/etc\/postgresql\/15\/main\/postgresql\.conf .*restart PostgreSQL/);
    assert.equal(planTimescale(installed(TESTED_TIMESCALEDB, { preloaded: false }), false).action, 'plain');
    const refused = planTimescale(installed(TESTED_TIMESCALEDB, { preloaded: false }), true);
    assert.equal(refused.action, 'refuse');
    assert.match(refused.action === 'refuse' ? refused.fix : '', /shared_preload_libraries/);
  });

  it('an extension older than the migrations need: plain with the update command, or refused on a hypertable', () => {
    const old = planTimescale(installed('1.7.5'), false);
    assert.equal(old.action, 'plain');
    assert.match(old.action === 'plain' ? old.fix ?? '' : '', new RegExp(`is 1\\.7\\.5; the mothership needs ${MIN_TIMESCALEDB.replaceAll('.', '\\.')} or newer.*ALTER EXTENSION timescaledb UPDATE`));
    assert.equal(planTimescale(installed('1.7.5'), true).action, 'refuse');
    const oldPackage = planTimescale({ ...offered, defaultVersion: '1.7.5' }, false);
    assert.equal(oldPackage.action === 'plain' ? oldPackage.reason : '', 'version_too_old');
  });

  it('a newer extension than tested is used, with a note', () => {
    const plan = planTimescale(installed('3.1.0'), true);
    assert.equal(plan.action, 'use');
    assert.match(plan.action === 'use' ? plan.note ?? '' : '', new RegExp(`newer than .*${TESTED_TIMESCALEDB.replaceAll('.', '\\.')}`));
  });

  it('compares versions numerically and reads the preload list as PostgreSQL writes it', () => {
    assert.equal(compareVersions('2.10.0', '2.9.9'), 1);
    assert.equal(compareVersions('2.28.3', '2.28.3'), 0);
    assert.equal(compareVersions('2.28', '2.28.0'), 0);
    assert.equal(compareVersions('2.13.0-dev', '2.13.0'), 0);
    assert.equal(compareVersions('1.7.5', '2.0.0'), -1);
    assert.deepEqual(preloadList('pg_stat_statements, "timescaledb"'), ['pg_stat_statements', 'timescaledb']);
    assert.deepEqual(preloadList(''), []);
  });
});

describe('PostgreSQL errors are reported as what they are', () => {
  const serverError = (message: string, fields: Partial<pg.DatabaseError>): pg.DatabaseError => Object.assign(new pg.DatabaseError(message, 0, 'error'), fields);

  it('a FATAL from the server is a configuration error with its code and hint, never "unreachable"', () => {
    const fatal = serverError('extension "timescaledb" must be preloaded', { severity: 'FATAL', code: 'XX000', hint: 'Please preload the timescaledb library\n\tvia shared_preload_libraries.' });
    const outcome = classifyTsdbError(fatal, { target: 'db:5432/x', timeoutMs: 1 });
    assert.equal(outcome.error.code, 'sink_misconfigured');
    assert.equal(outcome.error.message, 'tsdb: PostgreSQL at db:5432/x refused: FATAL XX000: extension "…" must be preloaded (hint: Please preload the timescaledb library via shared_preload_libraries.)');
  });

  it('wrong password, missing database and missing rights are configuration errors; a broken socket is unreachable', () => {
    for (const [code, severity] of [['28P01', 'FATAL'], ['3D000', 'FATAL'], ['42501', 'ERROR']] as const) {
      const outcome = classifyTsdbError(serverError('refused', { code, severity }), { target: 't', timeoutMs: 1 });
      assert.equal(outcome.kind, 'retryable');
      assert.equal(outcome.error.code, 'sink_misconfigured', code);
      assert.match(outcome.error.message, new RegExp(`refused: ${severity} ${code}`));
    }
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const outcome = classifyTsdbError(reset, { target: 't', timeoutMs: 1 });
    assert.equal(outcome.error.code, 'sink_unavailable');
    assert.match(outcome.error.message, /unreachable \(ECONNRESET\)/);
  });
});
