import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { COMMANDS, runCli, type CliIo } from '../../src/cli/commands.js';
import { optionSignature } from '../../src/cli/args.js';

const PKG_VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

interface Run {
  code: number | 'serving';
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process with an empty environment (plus `env`), a fixed clock and `fetch`. */
async function cli(argv: string[], env: Record<string, string> = {}, fetchImpl?: typeof fetch): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env,
    interactive: false,
    columns: () => undefined,
    now: () => 1_000,
    ...(fetchImpl === undefined ? {} : { fetch: fetchImpl }),
  };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}

const SUBCOMMANDS = COMMANDS.map((c) => [...c.path]);

describe('mothership help and version', () => {
  for (const path of SUBCOMMANDS) {
    for (const flag of ['--help', '-h']) {
      test(`${path.join(' ')} ${flag}: the command's help on stdout, exit 0`, async () => {
        const r = await cli([...path, flag]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, '');
        assert.match(r.stdout, new RegExp(`^usage: mothership ${path.join(' ')}\\b`));
        const command = COMMANDS.find((c) => c.path.join(' ') === path.join(' '));
        const flat = r.stdout.replace(/\s+/g, ' ');
        for (const o of command?.options ?? []) {
          assert.ok(r.stdout.includes(optionSignature(o)), `help lists ${optionSignature(o)}`);
          if (o.env !== undefined) assert.ok(flat.includes(`[env: ${o.env}]`), `help names ${o.env}`);
          if (o.default !== undefined) assert.ok(flat.includes(`[default: ${o.default}]`), `help gives the default of --${o.name}`);
        }
        assert.match(r.stdout, /-h, --help/);
        assert.match(r.stdout, /exit codes: 0 success, 1 the command ran and failed, 2 usage error/);
      });
    }
    test(`help ${path.join(' ')}: the same help as --help`, async () => {
      assert.equal((await cli(['help', ...path])).stdout, (await cli([...path, '--help'])).stdout);
    });
  }

  test('--help wins over other problems on the line', async () => {
    const r = await cli(['send', '--bogus', '--batch', 'x', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^usage: mothership send/);
  });

  test('--help after -- is a file name, not a request for help', async () => {
    const r = await cli(['send', '--', '--help']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot read '--help': no such file/);
  });

  test('mothership --help, -h and help list every command', async () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      const r = await cli(argv);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /^mothership \d+\.\d+\.\d+/);
      for (const path of SUBCOMMANDS) assert.ok(r.stdout.includes(`  ${path.join(' ')}`), `${argv.join(' ')} lists ${path.join(' ')}`);
      assert.match(r.stdout, /-V, --version/);
    }
  });

  test('a group (spool, deadletters) with --help lists its subcommands', async () => {
    for (const group of ['spool', 'deadletters']) {
      for (const argv of [[group, '--help'], ['help', group]]) {
        const r = await cli(argv);
        assert.equal(r.code, 0);
        assert.match(r.stdout, new RegExp(`^usage: mothership ${group} <`));
      }
    }
    assert.match((await cli(['deadletters', '-h'])).stdout, /deadletters list[\s\S]*deadletters replay/);
  });

  test("--version and -V print package.json's version", async () => {
    for (const flag of ['--version', '-V']) {
      const r = await cli([flag]);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `mothership ${PKG_VERSION}\n`);
    }
  });

  test('no command: usage on stderr, exit 2', async () => {
    const r = await cli([]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^mothership: missing command\nusage: mothership <command>/);
  });
});

describe('mothership usage errors exit 2 with one line and the usage on stderr', () => {
  const expectUsageError = (r: Run, command: string, problem: RegExp): void => {
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    const [first, second] = r.stderr.split('\n');
    assert.match(first ?? '', new RegExp(`^mothership ${command}: `));
    assert.match(first ?? '', problem);
    assert.match(second ?? '', new RegExp(`^usage: mothership ${command}`));
  };

  for (const path of SUBCOMMANDS) {
    test(`${path.join(' ')} --bogus`, async () => {
      expectUsageError(await cli([...path, '--bogus']), path.join(' '), /unknown option '--bogus'/);
    });
  }

  test('unknown commands, subcommands and top-level options', async () => {
    const cmd = await cli(['sned']);
    assert.equal(cmd.code, 2);
    assert.match(cmd.stderr, /^mothership: unknown command 'sned'\nusage: mothership <command>/);
    const opt = await cli(['--verbose']);
    assert.equal(opt.code, 2);
    assert.match(opt.stderr, /^mothership: unknown option '--verbose'/);
    expectUsageError(await cli(['spool', 'list']), 'spool', /unknown subcommand 'list'/);
    expectUsageError(await cli(['deadletters']), 'deadletters', /missing subcommand/);
    expectUsageError(await cli(['help', 'nope']), 'help', /unknown command 'nope'/);
  });

  test('missing and extra arguments', async () => {
    expectUsageError(await cli(['send']), 'send', /missing FILE/);
    expectUsageError(await cli(['serve', 'now']), 'serve', /unexpected argument 'now'/);
    expectUsageError(await cli(['check-config', 'x']), 'check-config', /unexpected argument 'x'/);
    expectUsageError(await cli(['spool', 'inspect', 'dir']), 'spool inspect', /unexpected argument 'dir'/);
  });

  test('missing and bad values name the option, or the variable they came from', async () => {
    expectUsageError(await cli(['send', 'f.jsonl', '--batch']), 'send', /option '--batch' needs a value/);
    expectUsageError(await cli(['send', '--url', '--batch', '5', 'f.jsonl']), 'send', /option '--url' needs a value/);
    expectUsageError(await cli(['send', '--batch', '0', 'f.jsonl']), 'send', /--batch must be a whole number from 1 to 100000, got '0'/);
    expectUsageError(await cli(['send', '--batch', '2.5', 'f.jsonl']), 'send', /--batch must be a whole number/);
    expectUsageError(await cli(['send', '--max-retry-seconds', '-1', 'f.jsonl']), 'send', /--max-retry-seconds/);
    expectUsageError(await cli(['send', '--url', 'localhost:8080', 'f.jsonl']), 'send', /--url must be an http:\/\/ or https:\/\/ URL/);
    expectUsageError(await cli(['send', 'f.jsonl'], { MOTHERSHIP_URL: 'ftp://x' }), 'send', /MOTHERSHIP_URL \(environment\) must be an http/);
    expectUsageError(await cli(['send', '--help=yes', 'f.jsonl']), 'send', /option '--help' takes no value/);
    expectUsageError(await cli(['deadletters', 'list', '--admin-token', 't', '--sink', 'disk']), 'deadletters list', /--sink must be one of tsdb, loki, got 'disk'/);
    expectUsageError(await cli(['deadletters', 'list', '--admin-token', 't', '--limit', '5000']), 'deadletters list', /--limit must be a whole number from 1 to 1000/);
  });

  test('deadletters without an admin token', async () => {
    expectUsageError(await cli(['deadletters', 'list']), 'deadletters list', /missing --admin-token \(or set ADMIN_TOKEN\)/);
    expectUsageError(await cli(['deadletters', 'replay', '--sink', 'tsdb']), 'deadletters replay', /missing --admin-token/);
  });

  test('check-config names a bad variable, exit 2', async () => {
    const r = await cli(['check-config'], { SERVER_PORT: 'http' });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /SERVER_PORT/);
  });
});

describe('mothership send and deadletters, in-process', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cli-args-'));
    await writeFile(path.join(dir, 'ok.jsonl'), '{"a":1}\n{"a":2}\n{"a":3}\n');
    await writeFile(path.join(dir, 'bad.jsonl'), '{"a":1}\nnot json\n');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const answer = (status: number, body: unknown, headers: Record<string, string> = {}): Response => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

  test('missing or unparseable files exit 2 before anything is sent', async () => {
    let calls = 0;
    const counting: typeof fetch = async () => {
      calls++;
      return answer(200, { written: 1, errors: 0 });
    };
    const missing = await cli(['send', path.join(dir, 'ok.jsonl'), path.join(dir, 'missing.jsonl')], {}, counting);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^mothership send: cannot read '.*missing\.jsonl': no such file\nusage: mothership send/);
    const bad = await cli(['send', path.join(dir, 'ok.jsonl'), path.join(dir, 'bad.jsonl')], {}, counting);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /bad\.jsonl:2: not JSON/);
    assert.equal(calls, 0);
  });

  test('a good send: the JSON summary on stdout, one human line on stderr, exit 0', async () => {
    const bodies: string[] = [];
    const ok: typeof fetch = async (url, init) => {
      bodies.push(String(url));
      assert.equal((init?.headers as Record<string, string>).authorization, 'Bearer env-token');
      return answer(200, { written: 2, errors: 0, sink_results: { tsdb: { duplicates: 1 } } });
    };
    const r = await cli(['send', '--batch', '2', path.join(dir, 'ok.jsonl')], { MOTHERSHIP_URL: 'http://example.test:9/', AUTH_TOKEN: 'env-token' }, ok);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(bodies, ['http://example.test:9/ingest', 'http://example.test:9/ingest']);
    assert.deepEqual(JSON.parse(r.stdout), { files: 1, messages: 3, batches: 2, accepted: 4, rejected: 0, duplicates: 2, retries: 0 });
    assert.equal(r.stderr.split('\n').length, 2, 'one line on stderr');
    assert.match(r.stderr, /^sent 3 messages in 2 batches from 1 file/);
  });

  test('rejected messages exit 1 and are named on stderr', async () => {
    const rejecting: typeof fetch = async () => answer(200, { written: 2, errors: 1, rejected: [{ index: 1, error: 'message_not_object', message: 'Message 1 is a number' }] });
    const r = await cli(['send', path.join(dir, 'ok.jsonl')], {}, rejecting);
    assert.equal(r.code, 1);
    assert.equal((JSON.parse(r.stdout) as { rejected: number }).rejected, 1);
    assert.match(r.stderr, /rejected: .*ok\.jsonl: message 2 of the file \(1 in its batch\): message_not_object/);
  });

  test('a refused batch exits 1 with the summary so far and the reason', async () => {
    const refusing: typeof fetch = async () => answer(401, { status: 'error', error: 'unauthorized', message: 'Missing or invalid bearer token' });
    const r = await cli(['send', path.join(dir, 'ok.jsonl')], {}, refusing);
    assert.equal(r.code, 1);
    const summary = JSON.parse(r.stdout) as { messages: number; error: string };
    assert.equal(summary.messages, 0);
    assert.match(summary.error, /refused the batch with 401: unauthorized/);
    assert.match(r.stderr, /^mothership send: ok\.jsonl, messages 1-3: the mothership refused the batch with 401: unauthorized: Missing or invalid bearer token \(pass --token or set AUTH_TOKEN\)\n/);
  });

  test('an unreachable server with --max-retry-seconds 0 exits 1 at once', async () => {
    const down: typeof fetch = async () => {
      throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }) });
    };
    const r = await cli(['send', '--max-retry-seconds', '0', path.join(dir, 'ok.jsonl')], {}, down);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /could not deliver to http:\/\/localhost:8080 \(no retries allowed\): connect ECONNREFUSED/);
  });

  test('deadletters: the answer on stdout (0), a refusal or an unreachable server on stderr (1)', async () => {
    const seen: string[] = [];
    const server: typeof fetch = async (url, init) => {
      seen.push(`${init?.method ?? 'GET'} ${String(url)} ${String(init?.body ?? '')}`);
      const auth = (init?.headers as Record<string, string>).authorization;
      if (auth !== 'Bearer good') return answer(401, { status: 'error', error: 'unauthorized', message: 'Invalid bearer token' });
      return answer(200, String(url).includes('replay') ? { sink: 'tsdb', replayed: 0 } : { sink: 'tsdb', total: 0, offset: 0, limit: 5, items: [] });
    };
    const list = await cli(['deadletters', 'list', '--sink', 'tsdb', '--limit', '5', '--code', 'sink_rejected'], { ADMIN_TOKEN: 'good' }, server);
    assert.equal(list.code, 0, list.stderr);
    assert.equal((JSON.parse(list.stdout) as { total: number }).total, 0);
    assert.equal(seen[0], 'GET http://localhost:8080/admin/deadletters?sink=tsdb&code=sink_rejected&limit=5&offset=0 ');
    const replay = await cli(['deadletters', 'replay', '--sink', 'tsdb', '--source', 'edge-07', '--url', 'http://m:1'], { ADMIN_TOKEN: 'good' }, server);
    assert.equal(replay.code, 0, replay.stderr);
    assert.equal(seen[1], 'POST http://m:1/admin/deadletters/replay {"limit":100000,"sink":"tsdb","source":"edge-07"}');
    const denied = await cli(['deadletters', 'list', '--admin-token', 'bad'], {}, server);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /^mothership deadletters list: the server answered 401 \(check --admin-token \/ ADMIN_TOKEN\): unauthorized: Invalid bearer token\n$/);
    const down = await cli(['deadletters', 'list', '--admin-token', 'x'], {}, async () => {
      throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:8080') });
    });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach http:\/\/localhost:8080: connect ECONNREFUSED/);
  });

  test('spool inspect: a folder that is not there exits 2 naming it', async () => {
    const r = await cli(['spool', 'inspect', '--dir', path.join(dir, 'nope')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no spool folder at .*nope/);
    const fromEnv = await cli(['spool', 'inspect'], { DATA_DIR: path.join(dir, 'data') });
    assert.match(fromEnv.stderr, new RegExp(`no spool folder at ${path.join(dir, 'data', 'spool')}`));
  });
});
