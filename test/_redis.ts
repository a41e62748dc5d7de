import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Socket } from 'node:net';
import { freePort } from './_wait.ts';

/** A `redis-server` of the test's own, on loopback, with no persistence. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Kills the server (SIGKILL: clients see the connection drop, no goodbye). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty (does nothing while it runs). */
  start(): Promise<void>;
  /** Sends a raw command over a fresh connection; answers the raw reply text. */
  command(...args: string[]): Promise<string>;
}

/** Whether Debian's `redis-server` is installed (`.ci/run` installs it). */
export function haveRedisServer(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether the Redis tests run: when `redis-server` is installed, or when `.ci/run` demands it
 * (`CIRRUS_REQUIRE_SERVICES=1`: a missing server then fails the tests instead of skipping them).
 */
export const redisTestsRun = haveRedisServer() || process.env.CIRRUS_REQUIRE_SERVICES === '1';
if (!redisTestsRun) {
  console.warn(
    'SKIPPED: the Redis tests need redis-server (apt-get install redis-server); .ci/run installs it',
  );
}

/** Starts `redis-server` on a free loopback port, `--save '' --appendonly no`. */
export async function startRedis(): Promise<RedisServer> {
  if (!haveRedisServer()) {
    throw new Error('redis-server is not installed: apt-get install redis-server (.ci/run does)');
  }
  const port = await freePort();
  let child: ChildProcess | undefined;

  const start = async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) return;
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
    ];
    const started = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`redis-server did not start: ${output}`)),
        10_000,
      );
      started.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      started.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}: ${output}`));
      });
    });
    started.stdout?.resume();
    started.stderr?.resume();
  };
  // A worker that dies without running afterAll must not leave a server behind.
  process.once('exit', () => child?.kill('SIGKILL'));

  const stop = async () => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = once(running, 'exit');
    running.kill('SIGKILL');
    await exited;
  };

  const command = async (...args: string[]) => {
    const socket = new Socket();
    socket.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const encoded = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
    socket.write(encoded);
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    socket.destroy();
    return chunk.toString();
  };

  await start();
  return { port, url: `redis://127.0.0.1:${port}`, stop, start, command };
}
