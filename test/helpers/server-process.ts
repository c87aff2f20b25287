import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

export interface ServerProcess {
  readonly url: string;
  readonly pid: number;
  /** Every line the server wrote (JSON log lines and anything else). */
  readonly output: string[];
  /** Sends a signal and waits for the exit; resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/**
 * Starts the built server (dist/src/main.js) as a child process on a free port and waits for
 * its "listening" log line (so LOG_LEVEL must stay at info or below). The environment is exactly `env` on top of PATH/HOME: nothing
 * leaks in from the developer's shell.
 */
export async function startServer(env: Record<string, string>, timeoutMs = 60_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', SERVER_HOST: '127.0.0.1', SERVER_PORT: '0', LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  // A failing test must not leave a server running after the test process is gone.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  // Nor may a server a failed test did not stop keep the test file's process alive (the runner
  // would wait for it forever): the child and its pipes do not hold the event loop, and the
  // server dies with the process. stop() holds it with its own timer while it waits.
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      process.off('exit', killOnExit);
      resolve(code);
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in ${timeoutMs} ms:\n${output.join('\n')}`));
    }, timeoutMs);
    const onLine = (line: string): void => {
      output.push(line);
      const address = listeningAddress(line);
      if (address !== null) {
        clearTimeout(timer);
        resolve(address);
      }
    };
    collectLines(child, onLine);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${String(code)} before listening:\n${output.join('\n')}`));
    });
  });
  return {
    url,
    pid: child.pid as number,
    output,
    async stop(signal: NodeJS.Signals = 'SIGTERM', stopTimeoutMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

function collectLines(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    let pending = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
  }
}

function listeningAddress(line: string): string | null {
  if (!line.startsWith('{')) return null;
  try {
    const entry = JSON.parse(line) as { msg?: unknown; address?: unknown };
    return entry.msg === 'mothership listening' && typeof entry.address === 'string' ? entry.address : null;
  } catch {
    return null;
  }
}
