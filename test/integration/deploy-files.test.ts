/**
 * The deployment files (Dockerfile, compose files, Loki/Prometheus/Grafana configuration and
 * dashboards) checked offline, as far as this machine allows:
 * - the compose files pass `docker-compose config -q` (when docker-compose is installed;
 *   .ci/run installs it) and are wired to our variables and files;
 * - compose.cluster.yml stays a cluster: three JetStream nodes routed to each other, two
 *   motherships sharing one replicated stream behind a load balancer whose nginx configuration
 *   names both, retries safely and lets the largest batch through (`nginx -t` when installed);
 * - the Dockerfile has the structure we rely on (hadolint runs too when installed);
 * - the image's healthcheck script answers like Docker expects;
 * - every dashboard parses and uses only the provisioned data sources, our Loki labels and the
 *   mothership's Prometheus metrics (checked against the real registry; PromQL parsed by
 *   promtool when installed or named by PROMTOOL);
 * - EVERY SQL query of the PostgreSQL panels and variables runs, after Grafana's macro
 *   expansion, against the real schema (the project's migrations) holding the sample data,
 *   as the read-only role Grafana uses in compose.yml.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import type { PgConnection, TsdbConfig } from '../../src/config/config.js';
import { VARIABLES, type VariableSpec } from '../../src/config/variables.js';
import type { IngestEvent } from '../../src/pipeline/event.js';
import { normalizeBatch } from '../../src/pipeline/normalize.js';
import { createTsdbSink, type TsdbSink } from '../../src/sinks/tsdb/sink.js';
import { batchOf } from '../../src/sinks/sink.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { connect, databaseTargets, dropSchema, uniqueSchema } from '../helpers/database.js';
import { jsonlMessages, payloadSamples, weatherMessages } from '../helpers/samples.js';

const ROOT = findRoot();
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');
const DASHBOARD_DIR = 'deploy/grafana/dashboards';
const DATASOURCE_UIDS = { tsdb: 'edgebot-tsdb', loki: 'edgebot-loki', prometheus: 'edgebot-prometheus' } as const;
/** The Loki stream labels the mothership sets (LOKI_LABELS default) plus the static `job`. */
const LOKI_LABELS = new Set(['source', 'service', 'type', 'severity', 'host', 'job']);
/** Every Prometheus series the dashboards read, with its labels (besides job and instance). */
const EXPECTED_METRICS: Readonly<Record<string, readonly string[]>> = {
  mothership_ingest_requests_total: ['status', 'error_code'],
  mothership_messages_total: ['outcome'],
  mothership_sink_events_total: ['sink', 'result'],
  mothership_sink_write_duration_seconds: ['sink'],
  mothership_sink_backlog_events: ['sink'],
  mothership_sink_backlog_bytes: ['sink'],
  mothership_sink_oldest_undelivered_age_seconds: ['sink'],
  mothership_sink_circuit_state: ['sink'],
  mothership_sink_dead_letters: ['sink'],
  mothership_spool_bytes: [],
  mothership_node_last_seen_timestamp_seconds: ['node'],
  mothership_node_messages_total: ['node'],
  process_resident_memory_bytes: [],
  process_cpu_seconds_total: [],
  nodejs_eventloop_lag_seconds: [],
  up: [],
};
const HISTOGRAMS = new Set(['mothership_sink_write_duration_seconds']);

function findRoot(): string {
  for (const dir of [fileURLToPath(new URL('../../../', import.meta.url)), process.cwd()]) {
    if (existsSync(path.join(dir, 'Dockerfile')) && existsSync(path.join(dir, 'package.json'))) return dir;
  }
  throw new Error('repository root (with the Dockerfile) not found');
}

function which(name: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : null;
}

function run(cmd: string, args: readonly string[], cwd = ROOT): { status: number | null; output: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/** Stages of a Dockerfile: `FROM` line, name, and instruction lines (continuations joined). */
function dockerStages(text: string): Array<{ from: string; name: string | null; lines: string[] }> {
  const logical = text.replace(/\\\r?\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const stages: Array<{ from: string; name: string | null; lines: string[] }> = [];
  const args = new Map<string, string>();
  for (const line of logical) {
    const arg = /^ARG\s+(\w+)=(\S+)/i.exec(line);
    if (arg && stages.length === 0) args.set(arg[1] as string, arg[2] as string);
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) {
      const image = (from[1] as string).replace(/\$\{(\w+)\}/g, (_, n: string) => args.get(n) ?? '');
      stages.push({ from: image, name: from[2] ?? null, lines: [] });
    } else {
      stages.at(-1)?.lines.push(line);
    }
  }
  return stages;
}

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  const stages = dockerStages(text);
  const runtime = stages.at(-1);

  it('builds in one stage with dev dependencies and runs from a slim Node 20 stage with production ones', () => {
    assert.ok(stages.length >= 2, 'multi-stage');
    const build = stages.find((s) => s.name === 'build');
    assert.ok(build, 'a stage named build');
    assert.ok(build.lines.some((l) => /^RUN\s+npm ci\b(?!.*--omit=dev)/.test(l)), 'build stage: npm ci with dev dependencies');
    assert.ok(build.lines.some((l) => /npm run build/.test(l)), 'build stage: npm run build');
    assert.ok(runtime && runtime !== build);
    assert.match(runtime.from, /^node:20[.\d]*-(bookworm|bullseye)-slim$/);
    assert.ok(runtime.lines.some((l) => /^RUN\s+npm ci\b.*--omit=dev/.test(l)), 'runtime stage: npm ci --omit=dev');
    assert.ok(runtime.lines.some((l) => /^COPY\s+--from=build\s+\S*dist/.test(l)), 'runtime stage copies the compiled dist/ from build');
    assert.ok(!runtime.lines.some((l) => /^COPY\s+(--\S+\s+)*\.\s/.test(l)), 'no COPY of the whole context into the runtime image');
  });

  it('runs as a non-root user that owns /data, with signals handled and the contract of the image', () => {
    assert.ok(runtime);
    const users = runtime.lines.filter((l) => /^USER\s/i.test(l));
    assert.equal(users.length, 1);
    const user = (users[0] as string).split(/\s+/)[1] as string;
    assert.ok(!['root', '0', '0:0'].includes(user), `USER ${user} must not be root (PostgreSQL refuses to run as root)`);
    assert.ok(runtime.lines.some((l) => l.startsWith('RUN') && l.includes(`chown ${user}`) && l.includes('/data')), 'USER owns /data');
    assert.ok(runtime.lines.indexOf(users[0] as string) < runtime.lines.findIndex((l) => l.startsWith('CMD')), 'USER before CMD');
    assert.ok(runtime.lines.some((l) => /^ENV\b.*\bDATA_DIR=\/data\b/.test(l)));
    assert.ok(runtime.lines.some((l) => /^VOLUME\s+\[?"?\/data"?\]?$/.test(l)));
    assert.ok(runtime.lines.some((l) => /^EXPOSE\s+8080$/.test(l)));
    assert.ok(runtime.lines.includes('CMD ["node", "dist/src/main.js"]'));
    assert.ok(runtime.lines.some((l) => /^ENTRYPOINT\s+\["\/usr\/bin\/tini", "--"\]$/.test(l)), 'tini as PID 1 forwards SIGTERM and reaps');
    assert.ok(runtime.lines.some((l) => /^RUN\b.*apt-get install\b.*\btini\b/.test(l)));
    const health = runtime.lines.find((l) => l.startsWith('HEALTHCHECK'));
    assert.match(health ?? '', /CMD \["node", "deploy\/docker\/healthcheck\.mjs"\]/);
    assert.ok(runtime.lines.some((l) => /^COPY\s+deploy\/docker\/healthcheck\.mjs\s/.test(l)));
  });

  it('bakes no secret into the image and keeps secrets out of the build context', () => {
    for (const stage of stages) {
      for (const line of stage.lines.filter((l) => /^(ENV|ARG)\s/i.test(l))) {
        assert.doesNotMatch(line, /(PASSWORD|TOKEN|SECRET|PRIVATE|TSDB_URL)/i, `secret-looking ${line}`);
      }
      assert.ok(!stage.lines.some((l) => /^(COPY|ADD)\b.*(\.env|\.pem|\.key|id_rsa)/.test(l)));
    }
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim());
    for (const entry of ['node_modules', 'dist', 'data', '.git', '.env', '.env.*', '*.pem', '*.key']) assert.ok(ignored.includes(entry), `.dockerignore: ${entry}`);
    // What the Dockerfile copies from the context must exist and must not be ignored.
    for (const line of stages.flatMap((s) => s.lines).filter((l) => /^COPY\s/.test(l) && !l.includes('--from='))) {
      for (const source of line.split(/\s+/).slice(1, -1)) {
        assert.ok(existsSync(path.join(ROOT, source)), `COPY source ${source} exists`);
        assert.ok(!ignored.some((p) => p !== '' && !p.startsWith('#') && (source === p || source.startsWith(`${p}/`))), `COPY source ${source} is excluded by .dockerignore`);
      }
    }
  });

  it('passes hadolint when it is installed', (t) => {
    const hadolint = which('hadolint');
    if (hadolint === null) {
      t.skip('hadolint not installed (not packaged in Debian); the structural checks above stand in for it');
      return;
    }
    const r = run(hadolint, ['Dockerfile']);
    assert.equal(r.status, 0, r.output);
  });
});

describe('the image healthcheck script', () => {
  let server: http.Server;
  let port = 0;
  let status = 200;
  before(async () => {
    server = http.createServer((req, res) => {
      res.writeHead(req.url === '/health' ? status : 404).end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const probe = (env: Record<string, string>): Promise<number | null> =>
    new Promise((resolve) => {
      // Asynchronous: the stand-in server above answers from this same process.
      const child = spawn(process.execPath, [path.join(ROOT, 'deploy/docker/healthcheck.mjs')], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: 'ignore' });
      child.on('exit', (code) => resolve(code));
    });

  it('exits 0 on 200 from /health, 1 on 503 and 1 when nothing listens', async () => {
    status = 200;
    assert.equal(await probe({ SERVER_HOST: '0.0.0.0', SERVER_PORT: String(port) }), 0);
    status = 503;
    assert.equal(await probe({ SERVER_PORT: String(port) }), 1);
    server.close();
    assert.equal(await probe({ SERVER_PORT: String(port) }), 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Compose files

const COMPOSE_FILES = ['compose.yml', 'compose.observability.yml', 'compose.cluster.yml'] as const;
const dockerCompose = which('docker-compose');

/** `docker-compose config` as JSON (PyYAML is a dependency of Debian's docker-compose). */
function composeConfig(file: string): Record<string, any> | null {
  if (dockerCompose === null || which('python3') === null) return null;
  const yaml = run(dockerCompose, ['-f', file, 'config']);
  assert.equal(yaml.status, 0, yaml.output);
  const r = spawnSync('python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], { input: yaml.output, encoding: 'utf8' });
  return r.status === 0 ? (JSON.parse(r.stdout) as Record<string, any>) : null;
}

describe('compose files', () => {
  for (const file of COMPOSE_FILES) {
    it(`${file}: docker-compose config -q accepts it, from the root and from a subfolder`, (t) => {
      if (dockerCompose === null) {
        t.skip('docker-compose not installed (apt-get install -y docker-compose); compose validation skipped');
        return;
      }
      const fromRoot = run(dockerCompose, ['-f', file, 'config', '-q']);
      assert.equal(fromRoot.status, 0, fromRoot.output);
      // The seed README runs the observability stack from a subfolder: -f ../compose.observability.yml
      const fromSub = run(dockerCompose, ['-f', `../${file}`, 'config', '-q'], path.join(ROOT, 'deploy'));
      assert.equal(fromSub.status, 0, fromSub.output);
    });
  }

  it('compose.yml wires the mothership to TimescaleDB and Loki with our variables, after they are healthy', (t) => {
    const config = composeConfig('compose.yml');
    if (config === null) {
      t.skip('docker-compose (with python3-yaml) not installed');
      return;
    }
    const services = config['services'] as Record<string, any>;
    assert.deepEqual(Object.keys(services).sort(), ['grafana', 'loki', 'mothership', 'prometheus', 'timescaledb']);
    const m = services['mothership'];
    assert.ok(m.build, 'mothership is built from this repository');
    const env = m.environment as Record<string, string>;
    const known = new Set<string>(VARIABLES.map((v) => v.name));
    for (const name of Object.keys(env)) assert.ok(known.has(name), `mothership env ${name} is not one of src/config/variables.ts`);
    assert.equal(env['TSDB_HOST'], 'timescaledb');
    assert.equal(env['LOKI_ENABLED'], 'true');
    assert.equal(env['LOKI_URL'], 'http://loki:3100');
    assert.equal(env['DATA_DIR'], '/data');
    assert.equal(env['TSDB_PASSWORD'], services['timescaledb'].environment.POSTGRES_PASSWORD);
    assert.equal(env['TSDB_USERNAME'], services['timescaledb'].environment.POSTGRES_USER);
    assert.equal(env['TSDB_DATABASE'], services['timescaledb'].environment.POSTGRES_DB);
    assert.ok(Number(env['LOKI_MAX_AGE_HOURS']) < 168, "LOKI_MAX_AGE_HOURS stays inside Loki's reject_old_samples_max_age (168h)");
    assert.equal(m.depends_on.timescaledb.condition, 'service_healthy');
    assert.equal(m.depends_on.loki.condition, 'service_healthy');
    assert.match(services['timescaledb'].image, /^timescale\/timescaledb:latest-pg16$/);
    assert.match(services['timescaledb'].healthcheck.test.join(' '), /pg_isready/);
    assert.equal(services['grafana'].environment.GRAFANA_DB_PASSWORD, services['timescaledb'].environment.GRAFANA_DB_PASSWORD);
    for (const name of ['grafana', 'loki', 'prometheus', 'timescaledb']) assert.ok(services[name].healthcheck, `${name} has a healthcheck`);
    checkMounts(config);
  });

  it('compose.observability.yml is Loki + Grafana, with the logs dashboard only', (t) => {
    const config = composeConfig('compose.observability.yml');
    if (config === null) {
      t.skip('docker-compose (with python3-yaml) not installed');
      return;
    }
    assert.deepEqual(Object.keys(config['services'] as object).sort(), ['grafana', 'loki']);
    const mounts = checkMounts(config);
    const dashboards = mounts.filter((m) => m.source.includes(DASHBOARD_DIR)).map((m) => m.source);
    assert.deepEqual(dashboards.map((d) => path.basename(d)), ['edgebot-logs.json']);
    assert.deepEqual(datasourceUids(dashboard('edgebot-logs.json')), new Set([DATASOURCE_UIDS.loki]));
  });
});

/** Bind mounts of every service exist; the Grafana ones land where provisioning expects them. */
function checkMounts(config: Record<string, any>): Array<{ source: string; target: string }> {
  const mounts: Array<{ source: string; target: string }> = [];
  for (const [name, service] of Object.entries(config['services'] as Record<string, any>)) {
    for (const volume of (service.volumes ?? []) as Array<string | { type: string; source: string; target: string }>) {
      const [source, target] = typeof volume === 'string' ? volume.split(':') : [volume.source, volume.target];
      if (source === undefined || target === undefined || !source.startsWith('/')) continue; // named volume
      assert.ok(existsSync(source), `${name}: mounted file ${source} exists`);
      mounts.push({ source, target });
    }
  }
  const provider = read('deploy/grafana/provisioning/dashboards/edgebot.yaml');
  const dashboardsPath = /path:\s*(\S+)/.exec(provider)?.[1];
  assert.ok(mounts.some((m) => m.source.includes(DASHBOARD_DIR) && m.target.startsWith(dashboardsPath ?? '?')), 'dashboards mounted at the provider path');
  return mounts;
}

// ---------------------------------------------------------------------------------------------
// compose.cluster.yml: still a cluster

const CLUSTER_FILE = 'compose.cluster.yml';
const NATS_NODES = ['nats-1', 'nats-2', 'nats-3'];
const MOTHERSHIPS = ['mothership-1', 'mothership-2'];
const SPECS: readonly VariableSpec[] = VARIABLES;
const variableDefault = (name: string): number => Number(SPECS.find((v) => v.name === name)?.default);

/** A command as an argument list, `--flag=value` split in two. */
const argsOf = (command: string | string[]): string[] =>
  (typeof command === 'string' ? command.trim().split(/\s+/) : command).flatMap((a) => (/^--?\w+=/.test(a) ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a]));
const flag = (args: readonly string[], ...names: string[]): string | undefined => {
  const i = args.findIndex((a) => names.includes(a));
  return i < 0 ? undefined : args[i + 1];
};

/** A service's volumes as source, target and read-only, in either of docker-compose's forms. */
function volumesOf(service: Record<string, any>): Array<{ source: string; target: string; readOnly: boolean; named: boolean }> {
  return ((service['volumes'] ?? []) as Array<string | { type?: string; source: string; target: string; read_only?: boolean }>).map((v) => {
    if (typeof v !== 'string') return { source: v.source, target: v.target, readOnly: v.read_only === true, named: v.type === 'volume' };
    const [source = '', target = '', mode = ''] = v.split(':');
    return { source, target, readOnly: mode.split(',').includes('ro'), named: !source.startsWith('/') && !source.startsWith('.') };
  });
}

/** The environment values of the mothership fit their variables' kinds (an integer in range, an enum value). */
function checkEnvValues(service: string, env: Readonly<Record<string, string>>): void {
  for (const [name, value] of Object.entries(env)) {
    const spec = SPECS.find((v) => v.name === name);
    assert.ok(spec, `${service}: env ${name} is not one of src/config/variables.ts`);
    const kind = spec.kind;
    if (kind.type === 'integer' || kind.type === 'number') {
      const n = Number(value);
      assert.ok(value.trim() !== '' && Number.isFinite(n) && (kind.type === 'number' || Number.isInteger(n)), `${service}: ${name}=${value} is a number`);
      assert.ok(n >= kind.min && n <= kind.max, `${service}: ${name}=${value} within [${kind.min}, ${kind.max}]`);
    }
    if (kind.type === 'enum' && value !== '') assert.ok(kind.values.some((x) => x.toLowerCase() === value.toLowerCase()), `${service}: ${name}=${value}`);
  }
}

/** nginx sizes (16m) in bytes and times (130s, 2m) in seconds. */
function nginxSize(text: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(text.trim());
  assert.ok(m, `nginx size ${text}`);
  return Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[(m[2] as string).toLowerCase()]!;
}
function nginxSeconds(text: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(text.trim());
  assert.ok(m, `nginx time ${text}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
}
const withoutComments = (conf: string): string => conf.replace(/(^|\s)#.*$/gm, '$1');
/** Every value of a directive, as written (`proxy_read_timeout 130s;` → ['130s']). */
const directives = (conf: string, name: string): string[] =>
  [...withoutComments(conf).matchAll(new RegExp(`(?:^|[\\s;{])${name}\\s+([^;{}]+);`, 'g'))].map((m) => (m[1] as string).trim());

describe('compose.cluster.yml', () => {
  let config: Record<string, any> | null = null;
  let services: Record<string, any> = {};
  before(() => {
    config = composeConfig(CLUSTER_FILE);
    services = (config?.['services'] ?? {}) as Record<string, any>;
  });
  const needConfig = (t: { skip(message: string): void }): boolean => {
    if (config === null) t.skip('docker-compose (with python3-yaml) not installed');
    return config !== null;
  };

  it('runs three NATS nodes, two motherships, TimescaleDB and one load balancer', (t) => {
    if (!needConfig(t)) return;
    assert.deepEqual(Object.keys(services).sort(), ['loadbalancer', ...MOTHERSHIPS, ...NATS_NODES, 'timescaledb'].sort());
  });

  it('the NATS nodes form one JetStream cluster: each with its own store and name, routed to the others', (t) => {
    if (!needConfig(t)) return;
    const clusterNames = new Set<string>();
    const stores = new Set<string>();
    for (const node of NATS_NODES) {
      const s = services[node];
      assert.match(s.image, /^nats:\d+\.\d+[\w.-]*$/, `${node}: a pinned nats image`);
      const args = argsOf(s.command ?? []);
      assert.ok(args.includes('-js') || args.includes('--jetstream'), `${node}: JetStream on (-js)`);
      assert.equal(flag(args, '--server_name', '--name', '-n'), node, `${node}: --server_name is its service name (JetStream needs unique ones)`);
      const clusterName = flag(args, '--cluster_name');
      assert.ok(clusterName, `${node}: --cluster_name`);
      clusterNames.add(clusterName);
      assert.equal(new URL(flag(args, '--cluster') ?? 'x:').port, '6222', `${node}: --cluster listens on 6222`);
      const routes = (flag(args, '--routes') ?? '').split(',').filter((r) => r !== '').map((r) => new URL(r));
      for (const other of NATS_NODES.filter((n) => n !== node)) {
        assert.ok(routes.some((r) => r.hostname === other && r.port === '6222'), `${node}: routes to ${other}:6222`);
      }
      const storeDir = flag(args, '-sd', '--store_dir');
      assert.ok(storeDir, `${node}: -sd`);
      const store = volumesOf(s).find((v) => v.target === storeDir);
      assert.ok(store?.named, `${node}: a named volume at ${storeDir}`);
      assert.ok(!stores.has(store.source), `${node}: its own volume (${store.source} is shared)`);
      stores.add(store.source);
      const monitor = flag(args, '-m', '--http_port');
      assert.ok(monitor, `${node}: monitoring port (-m) for the healthcheck`);
      assert.match((s.healthcheck?.test ?? []).join(' '), new RegExp(`:${monitor}/healthz\\b`), `${node}: healthcheck on /healthz`);
      assert.equal(flag(args, '-p', '--port') ?? '4222', '4222', `${node}: clients on 4222`);
      // Promise 1 (200 means durable) on one Docker host: every node fsyncs before it confirms.
      const conf = flag(args, '-c', '--config');
      assert.ok(conf, `${node}: a configuration file (-c)`);
      const mount = volumesOf(s).find((v) => v.target === conf);
      assert.ok(mount !== undefined && !mount.named, `${node}: ${conf} mounted from the repository`);
      assert.match(readFileSync(path.resolve(ROOT, mount.source), 'utf8'), /^\s*sync_interval:\s*always\s*$/m, `${node}: JetStream fsyncs every write (sync_interval: always)`);
      assert.equal(s.ports, undefined, `${node}: not published (no authentication)`);
      assert.equal(s.restart, 'unless-stopped');
    }
    assert.equal(clusterNames.size, 1, 'one --cluster_name for all nodes');
  });

  it('both motherships share one R3 stream on all the nodes, with the same settings, after NATS and the database are healthy', (t) => {
    if (!needConfig(t)) return;
    const db = services['timescaledb'];
    const dataVolumes = new Set<string>();
    for (const name of MOTHERSHIPS) {
      const m = services[name];
      assert.ok(m.build, `${name}: built from this repository`);
      const env = m.environment as Record<string, string>;
      checkEnvValues(name, env);
      assert.deepEqual(env, services[MOTHERSHIPS[0] as string].environment, `${name}: same environment as ${MOTHERSHIPS[0]}`);
      const servers = (env['SPOOL_URL'] ?? '').split(',').map((u) => new URL(u.trim()));
      assert.deepEqual(servers.map((u) => u.protocol), servers.map(() => 'nats:'), `${name}: SPOOL_URL is nats:// URLs`);
      assert.deepEqual(servers.map((u) => `${u.hostname}:${u.port}`).sort(), NATS_NODES.map((n) => `${n}:4222`), `${name}: SPOOL_URL names every NATS node`);
      assert.ok(env['SPOOL_NATS_STREAM'], `${name}: SPOOL_NATS_STREAM`);
      const replicas = Number(env['SPOOL_NATS_REPLICAS']);
      assert.equal(replicas, 3, `${name}: SPOOL_NATS_REPLICAS=3 (a node can be lost)`);
      assert.ok(replicas <= NATS_NODES.length, `${name}: no more replicas than NATS nodes`);
      assert.ok(Number(env['SPOOL_MAX_BYTES']) >= variableDefault('MAX_BODY_BYTES'), `${name}: SPOOL_MAX_BYTES holds at least one batch`);
      assert.equal(env['TSDB_HOST'], 'timescaledb');
      assert.equal(env['TSDB_PORT'], '5432');
      assert.equal(env['TSDB_PASSWORD'], db.environment.POSTGRES_PASSWORD);
      assert.equal(env['TSDB_USERNAME'], db.environment.POSTGRES_USER);
      assert.equal(env['TSDB_DATABASE'], db.environment.POSTGRES_DB);
      for (const secret of ['AUTH_TOKENS', 'ADMIN_TOKEN']) assert.ok(secret in env, `${name}: ${secret} passed through`);
      assert.equal(env['DATA_DIR'], '/data');
      const data = volumesOf(m).find((v) => v.target === '/data');
      assert.ok(data?.named, `${name}: a named volume at /data (its dead letters)`);
      assert.ok(!dataVolumes.has(data.source), `${name}: its own data volume`);
      dataVolumes.add(data.source);
      for (const dep of [...NATS_NODES, 'timescaledb']) assert.equal(m.depends_on?.[dep]?.condition, 'service_healthy', `${name}: waits for ${dep} to be healthy`);
      assert.equal(m.ports, undefined, `${name}: not published (only the load balancer is)`);
      assert.match((m.healthcheck?.test ?? []).join(' '), /\/readyz\b/, `${name}: healthcheck on /readyz`);
      assert.equal(m.restart, 'unless-stopped');
    }
    assert.match(db.image, /^timescale\/timescaledb:/);
    assert.match(db.healthcheck.test.join(' '), /pg_isready/);
    assert.ok(volumesOf(db).some((v) => v.named && v.target === '/var/lib/postgresql/data'), 'timescaledb: a named data volume');
  });

  it("the motherships' healthcheck exits 0 on 200 from /readyz, 1 on 503 and 1 when nothing listens", async (t) => {
    if (!needConfig(t)) return;
    const test = services[MOTHERSHIPS[0] as string].healthcheck.test as string[];
    const argv = test[0] === 'CMD' ? test.slice(1) : test;
    assert.equal(argv[0], 'node', 'plain node: the image has no curl or wget');
    let status = 200;
    const server = http.createServer((req, res) => res.writeHead(req.url === '/readyz' ? status : 404).end('{}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const probe = (): Promise<number | null> =>
      new Promise((resolve) => {
        const args = argv.slice(1).map((a) => a.replace('127.0.0.1:8080', `127.0.0.1:${port}`));
        spawn(process.execPath, args, { stdio: 'ignore' }).on('exit', (code) => resolve(code));
      });
    try {
      assert.equal(await probe(), 0);
      status = 503;
      assert.equal(await probe(), 1);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    assert.equal(await probe(), 1);
  });

  it('only the load balancer is published, on 8080, with a read-only nginx configuration that names both motherships', (t) => {
    if (!needConfig(t)) return;
    const lb = services['loadbalancer'];
    for (const [name, s] of Object.entries(services)) if (name !== 'loadbalancer') assert.equal(s.ports, undefined, `${name} is not published`);
    assert.deepEqual(((lb.ports ?? []) as Array<string | { published: number; target: number }>).map((p) => (typeof p === 'string' ? p.replace(/^[\d.]+:/, '').replace(/\/tcp$/, '') : `${p.published}:${p.target}`)), ['8080:8080']);
    for (const name of MOTHERSHIPS) assert.ok(lb.depends_on?.[name], `loadbalancer: depends on ${name}`);
    assert.ok(lb.healthcheck, 'loadbalancer: healthcheck');
    const conf = volumesOf(lb).find((v) => v.target.startsWith('/etc/nginx/'));
    assert.ok(conf, 'loadbalancer: its configuration is mounted');
    assert.ok(conf.readOnly, 'loadbalancer: configuration mounted read-only');
    assert.equal(path.relative(ROOT, conf.source), 'deploy/cluster/nginx.conf');
    const text = readFileSync(conf.source, 'utf8');
    const upstreams = [...withoutComments(text).matchAll(/upstream\s+(\S+)\s*\{([^}]*)\}/g)];
    assert.equal(upstreams.length, 1, 'one upstream block');
    const [, upstream = '', body = ''] = upstreams[0] as RegExpMatchArray;
    const servers = directives(body, 'server').map((s) => s.split(/\s+/)[0] as string);
    assert.deepEqual(servers.sort(), MOTHERSHIPS.map((m) => `${m}:${services[m].environment.SERVER_PORT}`), 'the upstream is both motherships, at their SERVER_PORT');
    assert.deepEqual(directives(text, 'proxy_pass'), [`http://${upstream}`]);
    assert.ok(!/\b(ip_hash|hash|sticky)\b/.test(body), 'no sticky balancing: any instance takes any batch');
    assert.ok(directives(text, 'listen').some((l) => /^(\S+:)?8080\b/.test(l)), 'nginx listens on the published 8080');
    assert.ok(/location\s+\/\s*\{[^}]*proxy_pass/.test(withoutComments(text)), 'location / is proxied (/health, /ingest and the rest)');
  });

  it('deploy/cluster/nginx.conf: the largest batch passes, answers outlast the request timeout, retries are idempotent-safe', () => {
    const text = read('deploy/cluster/nginx.conf');
    const bodies = directives(text, 'client_max_body_size');
    assert.equal(bodies.length, 1);
    assert.ok(nginxSize(bodies[0] as string) >= variableDefault('MAX_BODY_BYTES'), 'client_max_body_size >= MAX_BODY_BYTES');
    for (const name of ['proxy_read_timeout', 'proxy_send_timeout']) {
      const values = directives(text, name);
      assert.equal(values.length, 1, name);
      assert.ok(nginxSeconds(values[0] as string) > variableDefault('SERVER_REQUEST_TIMEOUT_MS') / 1000, `${name} > SERVER_REQUEST_TIMEOUT_MS`);
    }
    const next = directives(text, 'proxy_next_upstream').flatMap((v) => v.split(/\s+/));
    // POST /ingest is resent to the other instance only because batches are idempotent (batch id
    // in JetStream, event ids in the database); a 503 is an answer for the edge node, not a failure.
    for (const condition of ['error', 'timeout', 'non_idempotent']) assert.ok(next.includes(condition), `proxy_next_upstream ${condition}`);
    assert.ok(!next.includes('http_503') && !next.includes('off'), 'a 503 goes back to the edge node with its Retry-After');
    assert.ok(!directives(text, 'proxy_request_buffering').includes('off'), 'bodies are buffered, so a retry can send them again');
  });

  it('deploy/cluster/nginx.conf passes nginx -t when nginx is installed', (t) => {
    const nginx = which('nginx');
    if (nginx === null) {
      t.skip('nginx not installed (apt-get install -y nginx-light); its configuration checked structurally only');
      return;
    }
    const version = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(run(nginx, ['-v']).output);
    assert.ok(version, 'nginx -v');
    const [major, minor, patch] = version.slice(1).map(Number) as [number, number, number];
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nginx-'));
    try {
      // The container's names do not resolve here; `resolve` in an upstream is nginx 1.27.3 or later.
      let site = read('deploy/cluster/nginx.conf').replace(/\bmothership-\d+:/g, '127.0.0.1:');
      if (major * 1e6 + minor * 1e3 + patch < 1_027_003) site = site.replace(/(server\s+\S+.*?)\s+resolve\b/g, '$1');
      writeFileSync(path.join(dir, 'site.conf'), site);
      // Inside http { } as in the image's nginx.conf.
      writeFileSync(path.join(dir, 'nginx.conf'), `pid ${dir}/nginx.pid;\nevents {}\nhttp {\n  access_log off;\n  include ${dir}/site.conf;\n}\n`);
      const r = run(nginx, ['-t', '-q', '-p', dir, '-e', path.join(dir, 'error.log'), '-c', path.join(dir, 'nginx.conf')]);
      assert.equal(r.status, 0, r.output);
      t.diagnostic(`nginx ${version.slice(1).join('.')} -t passed`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Loki, Prometheus and Grafana configuration

describe('Loki and Prometheus configuration', () => {
  it('Loki: single binary, filesystem storage, structured metadata, 168h age limit', () => {
    const loki = read('deploy/loki/loki-config.yaml');
    for (const setting of [/^auth_enabled: false$/m, /^\s+allow_structured_metadata: true$/m, /^\s+reject_old_samples: true$/m,
      /^\s+reject_old_samples_max_age: 168h$/m, /^\s+store: tsdb$/m, /^\s+object_store: filesystem$/m, /^\s+schema: v13$/m,
      /^\s+delete_request_store: filesystem$/m, /^\s+http_listen_port: 3100$/m]) {
      assert.match(loki, setting);
    }
  });

  it('Prometheus scrapes mothership:8080/metrics (promtool check config when available)', (t) => {
    const prom = read('deploy/prometheus/prometheus.yml');
    assert.match(prom, /job_name: mothership[\s\S]*?metrics_path: \/metrics[\s\S]*?targets: \["mothership:8080"\]/);
    const promtool = process.env['PROMTOOL'] ?? which('promtool');
    if (promtool === null) {
      t.skip('promtool not installed');
      return;
    }
    const r = run(promtool, ['check', 'config', 'deploy/prometheus/prometheus.yml']);
    assert.equal(r.status, 0, r.output);
  });

  it('Grafana data sources: fixed uids, the read-only database role, Loki only in the observability stack', () => {
    const full = read('deploy/grafana/provisioning/datasources/edgebot.yaml');
    for (const uid of Object.values(DATASOURCE_UIDS)) assert.match(full, new RegExp(`uid: ${uid}$`, 'm'));
    assert.match(full, /type: grafana-postgresql-datasource/);
    assert.match(full, /user: \$GRAFANA_DB_USER/);
    assert.match(full, /password: \$GRAFANA_DB_PASSWORD/);
    const observability = read('deploy/grafana/provisioning-observability/datasources/loki.yaml');
    assert.deepEqual([...observability.matchAll(/uid: (\S+)/g)].map((m) => m[1]), [DATASOURCE_UIDS.loki]);
  });
});

// ---------------------------------------------------------------------------------------------
// Dashboards

interface Target { refId: string; datasource?: { uid?: string }; rawSql?: string; format?: string; expr?: string }
interface Panel { title: string; type: string; datasource?: { uid?: string }; targets?: Target[]; panels?: Panel[] }
interface Variable { name: string; type: string; datasource?: { uid?: string }; query?: unknown; definition?: string; multi?: boolean; includeAll?: boolean }
interface Dashboard { uid: string; title: string; id: unknown; panels: Panel[]; templating: { list: Variable[] } }

const DASHBOARD_FILES = readdirSync(path.join(ROOT, DASHBOARD_DIR)).filter((f) => f.endsWith('.json')).sort();
const dashboard = (file: string): Dashboard => JSON.parse(read(path.join(DASHBOARD_DIR, file))) as Dashboard;
const panelsOf = (d: Dashboard): Panel[] => d.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
const targetsOf = (d: Dashboard, uid: string): Array<{ panel: Panel; target: Target }> =>
  panelsOf(d).flatMap((panel) => (panel.targets ?? []).filter((t) => (t.datasource ?? panel.datasource)?.uid === uid).map((target) => ({ panel, target })));

function datasourceUids(d: Dashboard): Set<string> {
  const uids = new Set<string>();
  for (const p of panelsOf(d)) for (const ds of [p.datasource, ...(p.targets ?? []).map((t) => t.datasource)]) if (ds?.uid) uids.add(ds.uid);
  for (const v of d.templating.list) if (v.datasource?.uid) uids.add(v.datasource.uid);
  return uids;
}

describe('Grafana dashboards', () => {
  it('are the four EdgeBot dashboards, parse, have unique uids and use only provisioned data sources', () => {
    assert.deepEqual(DASHBOARD_FILES, ['edgebot-fleet.json', 'edgebot-logs.json', 'edgebot-mothership.json', 'edgebot-telemetry.json']);
    const uids = new Set<string>();
    for (const file of DASHBOARD_FILES) {
      const d = dashboard(file);
      assert.equal(d.id, null, `${file}: id null, so provisioning assigns one`);
      assert.ok(!uids.has(d.uid), `${file}: duplicate uid`);
      uids.add(d.uid);
      for (const uid of datasourceUids(d)) assert.ok((Object.values(DATASOURCE_UIDS) as string[]).includes(uid), `${file}: unknown data source ${uid}`);
      for (const p of panelsOf(d)) assert.ok((p.targets ?? []).length > 0, `${file}: panel "${p.title}" has no query`);
    }
  });

  it('LogQL uses only the labels the mothership sets', () => {
    const d = dashboard('edgebot-logs.json');
    const exprs = [...targetsOf(d, DATASOURCE_UIDS.loki).map(({ target }) => target.expr ?? ''), ...d.templating.list.map((v) => v.definition ?? '')];
    for (const v of d.templating.list) {
      const label = (v.query as { label?: string } | undefined)?.label;
      if (label !== undefined) assert.ok(LOKI_LABELS.has(label), `variable ${v.name}: label ${label}`);
    }
    assert.ok(exprs.some((e) => e.includes('{source=~"$node"')), 'logs are selected by node: {source=~"$node", …}');
    for (const expr of exprs) {
      assert.equal(count(expr, '{'), count(expr, '}'), expr);
      assert.equal(count(expr, '('), count(expr, ')'), expr);
      for (const selector of expr.matchAll(/\{([^{}]*)\}/g)) {
        for (const m of (selector[1] as string).matchAll(/(\w+)\s*(?:=~|!~|!=|=)\s*"/g)) assert.ok(LOKI_LABELS.has(m[1] as string), `label ${m[1]} in ${expr}`);
      }
    }
  });

  it("PromQL reads the mothership's metrics by their exact names and labels (and promtool parses it)", async (t) => {
    const d = dashboard('edgebot-mothership.json');
    const exprs = [...targetsOf(d, DATASOURCE_UIDS.prometheus).map(({ target }) => target.expr ?? ''), ...d.templating.list.map((v) => v.definition ?? '')];
    const used = new Set<string>();
    const knownLabels = new Set(['job', 'instance', 'le', ...Object.values(EXPECTED_METRICS).flat()]);
    for (const expr of exprs) {
      for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{[]/g)) {
        const raw = m[1] as string;
        const base = raw.replace(/_(bucket|sum|count)$/, '');
        const name = HISTOGRAMS.has(base) ? base : raw;
        assert.ok(name in EXPECTED_METRICS, `unexpected metric ${raw} in ${expr}`);
        used.add(name);
      }
      const matchers = [...expr.matchAll(/(\w+)\s*(?:=~|!~|!=|=)\s*"/g)].map((m) => m[1] as string);
      const grouped = [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((b) => (b[1] as string).split(',').map((l) => l.trim()));
      for (const label of [...matchers, ...grouped]) assert.ok(knownLabels.has(label), `label ${label} in ${expr}`);
    }
    assert.deepEqual([...used].sort(), Object.keys(EXPECTED_METRICS).sort(), 'every expected metric is on the dashboard');

    await checkAgainstRegistry(t);
    const promtool = process.env['PROMTOOL'] ?? which('promtool');
    if (promtool === null) {
      t.diagnostic('promtool not installed: PromQL syntax not checked');
      return;
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'promql-'));
    try {
      // Variable definitions are Grafana's label_values(selector, label): promtool parses the selector.
      const promql = exprs.map((e) => substitutePromVars(e.replace(/^label_values\((.*),\s*\w+\)$/, '$1')));
      const rules = promql.map((e, i) => `      - record: dashboard:expr_${i}\n        expr: ${JSON.stringify(e)}`).join('\n');
      writeFileSync(path.join(dir, 'rules.yml'), `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
      const r = run(promtool, ['check', 'rules', path.join(dir, 'rules.yml')]);
      assert.equal(r.status, 0, r.output);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const count = (text: string, ch: string): number => text.split(ch).length - 1;
const substitutePromVars = (expr: string): string =>
  expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '1m').replaceAll('$__range', '1h').replace(/\$(job|instance)\b/g, '.*');

/** When the mothership's metrics module is built, its registry must hold every expected series with the expected labels. */
async function checkAgainstRegistry(t: { diagnostic(message: string): void }): Promise<void> {
  const file = fileURLToPath(new URL('../../src/telemetry/metrics.js', import.meta.url));
  if (!existsSync(file)) {
    t.diagnostic('src/telemetry/metrics.ts not built: metric names checked against the expected list only');
    return;
  }
  const { Metrics } = (await import(pathToFileURL(file).href)) as { Metrics: new (source: unknown) => { registry: { getSingleMetric(name: string): unknown } } };
  const metrics = new Metrics({ spoolBytes: () => 0, sinks: () => [], inflightBytes: () => 0 });
  for (const [name, labels] of Object.entries(EXPECTED_METRICS)) {
    if (name === 'up') continue; // added by Prometheus
    const metric = metrics.registry.getSingleMetric(name) as { labelNames?: string[] } | undefined;
    assert.ok(metric, `the mothership registers ${name}`);
    assert.deepEqual([...(metric.labelNames ?? [])].sort(), [...labels].sort(), `labels of ${name}`);
  }
  t.diagnostic(`checked against the registry of ${path.relative(ROOT, file)}`);
}

// ---------------------------------------------------------------------------------------------
// Dashboard SQL against the real schema

/** Grafana's template variables, as its SQL data sources format them (multi-value: quoted, comma-joined). */
interface Expansion { readonly from: Date; readonly to: Date; readonly interval: string; readonly vars: ReadonlyMap<string, readonly string[]> }

const quoteLiteral = (v: string): string => `'${v.replaceAll("'", "''")}'`;

function intervalSeconds(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/.exec(text.trim().replace(/^'|'$/g, ''));
  if (!m) throw new Error(`bad interval ${text}`);
  const factor = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd' | 'w'];
  return Number(m[1]) * factor;
}

/** Template variables first, then the PostgreSQL macros exactly as Grafana's macro engine writes them (timescaledb: false). */
function expandGrafanaSql(sql: string, x: Expansion): string {
  const rangeSeconds = Math.round((x.to.getTime() - x.from.getTime()) / 1000);
  const builtins: Record<string, string> = {
    __interval: x.interval, __interval_ms: String(intervalSeconds(x.interval) * 1000), __range: `${rangeSeconds}s`, __range_s: String(rangeSeconds),
    __from: String(x.from.getTime()), __to: String(x.to.getTime()),
  };
  const value = (name: string): string | undefined =>
    builtins[name] ?? (x.vars.has(name) ? (x.vars.get(name) as readonly string[]).map(quoteLiteral).join(',') : undefined);
  let out = sql.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a?: string, b?: string, c?: string) => value((a ?? b ?? c) as string) ?? whole);
  const iso = (d: Date): string => `'${d.toISOString()}'`;
  const macro = (name: string, args: string[], rest: string): string => {
    const col = args[0] ?? '';
    switch (name) {
      case '__time': return `${col} AS "time"`;
      case '__timeEpoch': return `extract(epoch from ${col}) as "time"`;
      case '__timeFilter': return `${col} BETWEEN ${iso(x.from)} AND ${iso(x.to)}`;
      case '__timeFrom': return iso(x.from);
      case '__timeTo': return iso(x.to);
      case '__timeGroup':
      case '__timeGroupAlias': {
        const s = intervalSeconds(args[1] ?? '');
        const group = `floor(extract(epoch from ${col})/${s})*${s}`;
        // Grafana: a $__timeGroup directly followed by ',' gets the alias too (pre-5.3 compatibility).
        return name === '__timeGroupAlias' || rest.startsWith(',') ? `${group} AS "time"` : group;
      }
      case '__unixEpochFilter': return `${col} >= ${Math.floor(x.from.getTime() / 1000)} AND ${col} <= ${Math.floor(x.to.getTime() / 1000)}`;
      default: throw new Error(`unknown Grafana macro $${name}`);
    }
  };
  out = out.replace(/\$([_a-zA-Z0-9]+)\(([^)]*)\)/g, (_whole, name: string, args: string, offset: number, all: string) =>
    macro(name, args.split(',').map((a) => a.trim()), all.slice(offset + _whole.length)));
  const left = /\$\{?[A-Za-z_]\w*/.exec(out.replace(/'(?:[^']|'')*'/g, "''"));
  if (left) throw new Error(`unexpanded ${left[0]} in:\n${out}`);
  return out;
}

/** Runs a psql script that uses `:'var'`, `:"var"` and `\gexec` (deploy/timescaledb/grafana-reader.psql). */
async function runPsql(client: pg.ClientBase, script: string, vars: Readonly<Record<string, string>>): Promise<void> {
  const get = (name: string): string => {
    const v = vars[name];
    if (v === undefined) throw new Error(`psql variable ${name} not set`);
    return v;
  };
  let statement = '';
  for (const raw of script.split('\n')) {
    const line = raw.replace(/--.*$/, '').trimEnd();
    if (line.trim() === '' || /^\s*\\set\b/.test(line)) continue;
    const gexec = /\\gexec\s*$/.test(line);
    statement += `${line.replace(/\\gexec\s*$/, '')}\n`;
    if (!gexec && !line.endsWith(';')) continue;
    const sql = statement.replace(/:'(\w+)'/g, (_, n: string) => pg.escapeLiteral(get(n))).replace(/:"(\w+)"/g, (_, n: string) => pg.escapeIdentifier(get(n)));
    statement = '';
    const result = await client.query({ text: sql, rowMode: 'array' });
    if (gexec) for (const row of result.rows as unknown[][]) for (const cell of row) await client.query(String(cell));
  }
  assert.equal(statement.trim(), '', 'script ends with a complete statement');
}

function sampleEvents(): IngestEvent[] {
  const ctx = { receivedAtMs: Date.now(), idempotencyKey: null, maxJsonDepth: 64 };
  const batch = (messages: unknown[], source: string | null, timestamp: unknown = null): IngestEvent[] => {
    const normalized = normalizeBatch({ messages, source, timestamp, isRetry: false }, ctx);
    assert.equal(normalized.rejected.length, 0);
    return normalized.events;
  };
  return [
    ...batch(jsonlMessages('syslog_events.jsonl'), 'edge-syslog'),
    ...batch(jsonlMessages('snmp_metrics.jsonl').slice(0, 400), 'edge-snmp'),
    ...batch(weatherMessages(), 'edge-weather'),
    ...payloadSamples().flatMap((s) => batch(s.body.messages, typeof s.body['source'] === 'string' ? s.body['source'] : null, s.body['timestamp'])),
    ...batch([{ message: 'no node named', severity: 'err' }], null),
  ];
}

/** Panels whose query may rightly find nothing in the sample data. */
const MAY_BE_EMPTY = new Set(['Interface traffic (from ifInOctets/ifOutOctets counters)']);

const targets = await databaseTargets();
after(async () => {
  for (const target of targets) await target.close();
});

for (const target of targets) {
  describe(`dashboard SQL on the ${target.name} PostgreSQL`, () => {
    let connection: PgConnection;
    let owner: pg.Client;
    let reader: pg.Client;
    let sink: TsdbSink;
    let readerRole: string | null = `t_reader_${randomBytes(5).toString('hex')}`;
    const schema = uniqueSchema();

    before(async () => {
      connection = await target.connection();
      owner = await connect(connection);
      await owner.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`);
      // The role Grafana uses in compose.yml, made before the tables exist, as on a new volume.
      try {
        await runPsql(owner, read('deploy/timescaledb/grafana-reader.psql'), {
          reader: readerRole as string, reader_password: randomBytes(12).toString('base64url'), owner: connection.user, schema, dbname: connection.database,
        });
      } catch (err) {
        if (!(err instanceof pg.DatabaseError && err.code === '42501')) throw err;
        console.log(`cannot create roles on ${target.name} (${err.message}): dashboard SQL runs as ${connection.user}`);
        readerRole = null;
      }
      const config: TsdbConfig = {
        enabled: true, mode: 'external', connection, schema, poolMax: 2, writeTimeoutMs: 60_000, chunkInterval: '1 day',
        compressAfter: null, retentionDays: 0, embedded: { dataDir: '/nonexistent', port: 0 },
      };
      sink = createTsdbSink(config, connection, silentLogger());
      await sink.start(AbortSignal.timeout(120_000));
      const outcome = await sink.send(batchOf(sampleEvents()), AbortSignal.timeout(120_000));
      assert.equal(outcome.kind, 'delivered', JSON.stringify(outcome));
      reader = await connect(connection);
      if (readerRole !== null) await reader.query(`SET ROLE ${pg.escapeIdentifier(readerRole)}`);
      await reader.query(`SET search_path TO ${pg.escapeIdentifier(schema)}, public`);
    });
    after(async () => {
      await reader?.end();
      await sink?.shutdown();
      await dropSchema(connection, schema);
      const exists = readerRole !== null && ((await owner.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [readerRole])).rowCount ?? 0) > 0;
      if (exists) {
        await owner.query(`DROP OWNED BY ${pg.escapeIdentifier(readerRole as string)}`);
        await owner.query(`DROP ROLE ${pg.escapeIdentifier(readerRole as string)}`);
      }
      await owner?.end();
    });

    it('the Grafana role may read the events and views but not write', async (t) => {
      if (readerRole === null) {
        t.skip('no role could be created');
        return;
      }
      for (const view of ['events', 'metrics', 'logs', 'events_per_minute']) await reader.query(`SELECT * FROM ${view} LIMIT 1`);
      await assert.rejects(reader.query(`DELETE FROM events`), (err: unknown) => err instanceof pg.DatabaseError && err.code === '42501');
    });

    for (const file of DASHBOARD_FILES) {
      const d = dashboard(file);
      const sqlTargets = targetsOf(d, DATASOURCE_UIDS.tsdb);
      const sqlVars = d.templating.list.filter((v) => v.datasource?.uid === DATASOURCE_UIDS.tsdb);
      if (sqlTargets.length === 0 && sqlVars.length === 0) continue;

      it(`${file}: every variable and panel query runs and the panels find the sample data`, async (t) => {
        const from = new Date('2024-01-01T00:00:00Z');
        const to = new Date(Date.now() + 3_600_000);
        const vars = new Map<string, readonly string[]>();
        const exec = async (what: string, sql: string, interval: string): Promise<pg.QueryResult> => {
          const expanded = expandGrafanaSql(sql, { from, to, interval, vars });
          try {
            return await reader.query(expanded);
          } catch (err) {
            throw new Error(`${file}: ${what} failed: ${(err as Error).message}\n${expanded}`);
          }
        };
        for (const v of sqlVars) {
          assert.ok(v.multi && v.includeAll, `${file}: variable ${v.name} is multi-value with All (the queries use = ANY(ARRAY[$${v.name}]))`);
          const result = await exec(`variable ${v.name}`, String(v.query), '1h');
          const values = result.rows.map((r: Record<string, unknown>) => String(Object.values(r)[0]));
          assert.ok(values.length > 0, `${file}: variable ${v.name} found no values`);
          vars.set(v.name, values);
          t.diagnostic(`variable ${v.name}: ${values.join(', ')}`);
        }
        for (const { panel, target: q } of sqlTargets) {
          assert.ok(q.rawSql, `${file}: "${panel.title}" has raw SQL`);
          for (const interval of ['1h', '1m']) {
            const result = await exec(`panel "${panel.title}" (${q.refId}, $__interval=${interval})`, q.rawSql, interval);
            if (!MAY_BE_EMPTY.has(panel.title)) assert.ok(result.rows.length > 0, `${file}: panel "${panel.title}" found no rows`);
            if (interval === '1h') t.diagnostic(`${panel.title}: ${result.rows.length} rows`);
            if (q.format === 'time_series') {
              assert.equal(result.fields[0]?.name, 'time', `${file}: "${panel.title}" returns the time first`);
              const times = result.rows.map((r: Record<string, unknown>) => Number(r['time'] instanceof Date ? r['time'].getTime() / 1000 : r['time']));
              assert.ok(times.every((x, i) => i === 0 || x >= (times[i - 1] as number)), `${file}: "${panel.title}" is sorted by time`);
            }
          }
        }
      });
    }
  });
}
