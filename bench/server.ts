/**
 * The server under test as a child process (`node dist/src/main.js`), plus what the report
 * reads from /proc: RSS sampled every 100 ms, CPU time (utime+stime), machine-wide busy time.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { freePort } from '../src/lib/free-port.js';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ServerSpec {
  readonly repoRoot: string;
  readonly databaseUrl: string;
  readonly schema: string;
  /** Holds DATA_DIR (spool, …) and server.log. */
  readonly workDir: string;
  readonly extraEnv: Readonly<Record<string, string>>;
  /** Script to run, relative to the repo root; default dist/src/main.js. */
  readonly entry?: string;
}

export interface ChildServer {
  readonly pid: number;
  readonly port: number;
  readonly logPath: string;
  readonly env: Readonly<Record<string, string>>;
  exitCode(): number | string | null;
  /** SIGTERM, then SIGKILL after 10 s; says how it ended (e.g. "exit 0 after SIGTERM in 0.3 s"). */
  stop(): Promise<string>;
}

const HEALTH_TIMEOUT_MS = 90_000;
const KILL_AFTER_MS = 10_000;

export async function startServer(spec: ServerSpec): Promise<ChildServer> {
  const port = await freePort();
  const logPath = path.join(spec.workDir, 'server.log');
  fs.mkdirSync(path.join(spec.workDir, 'data'), { recursive: true });
  // A clean environment, so a stray LOKI_* or TSDB_* in the caller's shell cannot change what is measured.
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: process.env['HOME'] ?? spec.workDir,
    SERVER_HOST: '127.0.0.1',
    SERVER_PORT: String(port),
    TSDB_URL: spec.databaseUrl,
    TSDB_SCHEMA: spec.schema,
    DATA_DIR: path.join(spec.workDir, 'data'),
    LOG_LEVEL: 'warn',
    LOG_FORMAT: 'json',
    ...spec.extraEnv,
  };
  const log = fs.openSync(logPath, 'a');
  // Own process group: a Ctrl-C at the terminal reaches only the bench, which then measures
  // what landed and stops the server itself.
  const child = spawn(process.execPath, [path.join(spec.repoRoot, spec.entry ?? 'dist/src/main.js')], {
    cwd: spec.repoRoot, env, stdio: ['ignore', log, log], detached: true,
  });
  fs.closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the server (no pid)');
  // If the bench dies, the server must not outlive it.
  const killOnExit = (): void => { child.kill('SIGKILL'); };
  process.on('exit', killOnExit);
  const server: ChildServer = {
    pid, port, logPath, env,
    exitCode: () => child.exitCode ?? child.signalCode,
    stop: async () => { const how = await stopChild(child); process.off('exit', killOnExit); return how; },
  };
  try {
    await waitHealthy(port, child);
  } catch (err) {
    await server.stop();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- server.log (tail) ---\n${tail(logPath, 20)}`);
  }
  return server;
}

async function waitHealthy(port: number, child: ChildProcess): Promise<void> {
  const deadline = performance.now() + HEALTH_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the server exited during start-up (${child.exitCode ?? child.signalCode})`);
    }
    if (await healthStatus('127.0.0.1', port) === 200) return;
    await sleep(200);
  }
  throw new Error(`GET /health did not answer 200 within ${HEALTH_TIMEOUT_MS / 1000} s`);
}

export function healthStatus(host: string, port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/health', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

async function stopChild(child: ChildProcess): Promise<string> {
  if (child.exitCode !== null || child.signalCode !== null) return `had already exited (${child.exitCode ?? child.signalCode})`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const t0 = performance.now();
  child.kill('SIGTERM');
  let killed = false;
  const timer = setTimeout(() => { killed = true; child.kill('SIGKILL'); }, KILL_AFTER_MS);
  await exited;
  clearTimeout(timer);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  return killed ? `still running ${KILL_AFTER_MS / 1000} s after SIGTERM: killed` : `exit ${child.exitCode ?? child.signalCode} ${seconds} s after SIGTERM`;
}


export function tail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

// ---- /proc readings ----

export const CLOCK_TICKS: number = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/** utime+stime of a process in seconds (all its threads); null if it is gone. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Busy CPU-seconds of the whole machine (all cores) since boot. */
export function machineBusySeconds(): number | null {
  try {
    const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - (cpu[3] ?? 0) - (cpu[4] ?? 0)) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/**
 * The process listening on a TCP port of this machine: the socket's inode from /proc/net/tcp{,6},
 * then the process holding it among /proc/<pid>/fd. Null when none is found or visible to us.
 */
export function listenerPid(port: number): number | null {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return null;
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      let link = '';
      try { link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
      const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
      if (inode !== undefined && inodes.has(inode)) return Number(pid);
    }
  }
  return null;
}

function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try { text = fs.readFileSync(file, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address(HEXIP:HEXPORT) rem_address st(0A = LISTEN) … uid timeout inode
      const f = line.trim().split(/\s+/);
      const localPort = Number.parseInt(f[1]?.split(':')[1] ?? '', 16);
      if (f[3] === '0A' && localPort === port && f[9] !== undefined) inodes.add(f[9]);
    }
  }
  return inodes;
}

/** Samples VmRSS every 100 ms; keeps the peak and the latest value (KiB). */
export class RssWatch {
  peakKiB = 0;
  lastKiB = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly pid: number) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 100);
  }
  sample(): void {
    try {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      if (m?.[1] === undefined) return;
      this.lastKiB = Number(m[1]);
      this.peakKiB = Math.max(this.peakKiB, this.lastKiB);
    } catch {
      // The process is gone: keep the last values.
    }
  }
  stop(): void { clearInterval(this.timer); }
}
