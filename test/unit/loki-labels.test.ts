import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isValidLabelName, toLabelName } from '../../src/sinks/loki/label-name.js';
import { formatLabels, parseLabelSet, sortPairs } from '../../src/sinks/loki/label-text.js';
import { capUtf8, LabelPolicy, sanitizeLabelValue, type LabelBudgetEvent } from '../../src/sinks/loki/labels.js';
import { makeEvent } from '../helpers/events.js';

describe('Loki label names', () => {
  test('field names become valid label names', () => {
    assert.equal(toLabelName('host'), 'host');
    assert.equal(toLabelName('source-ip'), 'source_ip');
    assert.equal(toLabelName('@timestamp'), '_timestamp');
    assert.equal(toLabelName('1st'), '_1st');
    assert.equal(toLabelName('__reserved'), '_reserved');
    assert.equal(toLabelName('métrique'), 'm_trique');
    assert.equal(toLabelName('   '), null);
    assert.equal(toLabelName('@'), null);
    for (const f of ['a.b', 'x y', '9', 'ok_1', 'Ünïcode']) {
      const name = toLabelName(f);
      assert.ok(name !== null && isValidLabelName(name), `${f} → ${name}`);
    }
  });

  test('valid names: letters, digits, _, not starting with a digit or __', () => {
    assert.ok(isValidLabelName('job'));
    assert.ok(isValidLabelName('_x1'));
    assert.ok(!isValidLabelName('1x'));
    assert.ok(!isValidLabelName('a-b'));
    assert.ok(!isValidLabelName('__name__'));
  });
});

describe('Loki label values', () => {
  test('control characters go, lone surrogates become U+FFFD, text is trimmed', () => {
    assert.equal(sanitizeLabelValue('  web\u000001\n\tx  '), 'web 01 x');
    assert.equal(sanitizeLabelValue('a\ud800b'), 'a\ufffdb');
    assert.equal(sanitizeLabelValue('\u0085\u009f'), '');
    assert.equal(sanitizeLabelValue('ünïcödé ok'), 'ünïcödé ok');
  });

  test('values are capped in UTF-8 bytes, never inside a character', () => {
    const long = 'é'.repeat(200); // 400 bytes
    const capped = sanitizeLabelValue(long, 255);
    assert.equal(Buffer.byteLength(capped), 254);
    assert.ok(!capped.includes('\ufffd'));
    assert.equal(capUtf8('abc', 2), 'ab');
    assert.equal(capUtf8('a€', 3), 'a');
  });
});

describe('label text', () => {
  test('formats sorted pairs as Loki reads them, and parses them back', () => {
    const text = formatLabels(sortPairs([['source', 'ship "7"'], ['host', 'a\\b\nc'], ['env', 'prod']]));
    assert.equal(text, '{env="prod", host="a\\\\b\\nc", source="ship \\"7\\""}');
    const parsed = parseLabelSet(text);
    assert.ok(parsed !== null);
    assert.equal(parsed.end, text.length);
    assert.deepEqual([...parsed.labels], [['env', 'prod'], ['host', 'a\\b\nc'], ['source', 'ship "7"']]);
  });

  test('parses Go escapes, quoted names and empty sets; refuses garbage', () => {
    const parsed = parseLabelSet('{a="\\u00e9\\x41\\101\\t", "b.c"="d"} tail');
    assert.ok(parsed !== null);
    assert.equal(parsed.labels.get('a'), 'éAA\t');
    assert.equal(parsed.labels.get('b.c'), 'd');
    assert.equal(parsed.end, '{a="\\u00e9\\x41\\101\\t", "b.c"="d"}'.length);
    assert.equal(parseLabelSet('{}')?.labels.size, 0);
    assert.equal(parseLabelSet('{a=b}'), null);
    assert.equal(parseLabelSet('{a="b"'), null);
    assert.equal(parseLabelSet('{1a="b"}'), null);
    assert.equal(parseLabelSet('a="b"'), null);
  });
});

describe('LabelPolicy', () => {
  const policy = (maxValuesPerLabel = 100, fields = ['source', 'service', 'type', 'severity', 'host'], staticLabels: Record<string, string> = { job: 'edgebot' }, onOver?: (e: LabelBudgetEvent) => void) =>
    new LabelPolicy({ fields, staticLabels, maxValuesPerLabel }, onOver);

  test('source first and always, then static and allow-listed fields; null fields are left out', () => {
    const p = policy();
    const labels = p.labelsFor(makeEvent(1, { service: null }));
    assert.equal(labels.text, '{host="edge-01", job="edgebot", severity="info", source="edge-01", type="syslog"}');
    const anonymous = p.labelsFor(makeEvent(2, { source: null }));
    assert.equal(new Map(anonymous.pairs).get('source'), 'unknown');
  });

  test('labels that carry a message field exactly are reported as carried', () => {
    const labels = policy().labelsFor(makeEvent(1));
    assert.ok(labels.carried.has('host'), 'data.host equals the host label');
    assert.ok(!labels.carried.has('seq'));
  });

  test('other allow-listed fields come from the message, scalars only', () => {
    const p = policy(100, ['facility', 'pid', 'nested']);
    const event = makeEvent(1, { data: { facility: 'local0', pid: 1234, nested: { a: 1 } }, dataJson: '{}' });
    const map = new Map(p.labelsFor(event).pairs);
    assert.equal(map.get('facility'), 'local0');
    assert.equal(map.get('pid'), '1234');
    assert.equal(map.has('nested'), false);
  });

  test('a label past its budget of distinct values is left out, counted, and reported once', () => {
    const reports: LabelBudgetEvent[] = [];
    const p = policy(3, ['host'], {}, (e) => reports.push(e));
    const hosts = ['a', 'b', 'c', 'd', 'e', 'a', 'd'];
    const got = hosts.map((h) => new Map(p.labelsFor(makeEvent(1, { host: h })).pairs).get('host'));
    assert.deepEqual(got, ['a', 'b', 'c', undefined, undefined, 'a', undefined]);
    assert.equal(p.overBudget.get('host'), 3);
    assert.deepEqual(reports, [{ label: 'host', limit: 3 }]);
    assert.equal(p.distinctValues()['host'], 3);
  });

  test('source is exempt from the budget: every node keeps its own streams', () => {
    const reports: LabelBudgetEvent[] = [];
    const p = policy(2, ['host'], {}, (e) => reports.push(e));
    const texts = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const map = new Map(p.labelsFor(makeEvent(i, { source: `node-${i}` })).pairs);
      assert.equal(map.get('source'), `node-${i}`);
      texts.add(p.labelsFor(makeEvent(i, { source: `node-${i}` })).text);
    }
    assert.equal(texts.size, 10);
    assert.deepEqual(reports, [{ label: 'source', limit: 2 }]);
    assert.equal(p.overBudget.get('source'), undefined);
  });

  test('never more than 15 labels, whatever the allow-list', () => {
    const fields = Array.from({ length: 30 }, (_, i) => `f${i}`);
    const data = Object.fromEntries(fields.map((f) => [f, 'v']));
    const p = policy(100, fields, { job: 'x' });
    const labels = p.labelsFor(makeEvent(1, { data, dataJson: JSON.stringify(data) }));
    assert.equal(labels.pairs.length, 15);
    assert.equal(new Map(labels.pairs).get('source'), 'edge-01');
  });
});
