import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './_wait.ts';

/** A PostgreSQL cluster of the test's own: a temp dir, a free loopback port, trust auth. */
export interface PostgresServer {
  readonly port: number;
  /** `postgres://cirrus@127.0.0.1:PORT/postgres` */
  readonly url: string;
  /** Kills the server and its backends (SIGKILL to the process group: no goodbye, no checkpoint). */
  stop(): Promise<void>;
  /** Starts it again on the same data and port (crash recovery from the WAL); nothing while it runs. */
  start(): Promise<void>;
  /** Stops it and removes its data. */
  destroy(): Promise<void>;
}

/** Debian puts PostgreSQL's server binaries in /usr/lib/postgresql/MAJOR/bin: the newest one. */
function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const majors = readdirSync(root)
    .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return majors[0] === undefined ? undefined : join(root, majors[0], 'bin');
}

/** Whether Debian's `postgresql` is installed (`.ci/run` installs it). */
export function havePostgres(): boolean {
  return binDir() !== undefined;
}

/**
 * Whether the PostgreSQL tests run: when the binaries are installed, or when `.ci/run` demands it
 * (`CIRRUS_REQUIRE_SERVICES=1`: a missing server then fails the tests instead of skipping them).
 */
export const postgresTestsRun = havePostgres() || process.env.CIRRUS_REQUIRE_SERVICES === '1';
if (!postgresTestsRun) {
  console.warn(
    'SKIPPED: the PostgreSQL tests need Debian’s postgresql (apt-get install postgresql); .ci/run installs it',
  );
}

/** initdb refuses to run as root: as root, the cluster runs as Debian's `postgres` user. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

/**
 * Starts a cluster: `initdb` into a temp dir, then `postgres` on a free loopback port with its
 * socket in that dir (`fsync=off`: a killed server loses nothing the OS has, which is all these
 * tests kill; only a machine crash would).
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  if (bin === undefined) {
    throw new Error('PostgreSQL is not installed: apt-get install postgresql (.ci/run does)');
  }
  const user = runAs();
  const dir = mkdtempSync(join(tmpdir(), 'cirrus-pg-'));
  if (user !== undefined) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  execFileSync(
    join(bin, 'initdb'),
    ['-D', data, '-U', 'cirrus', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'],
    { stdio: 'ignore', ...(user ?? {}) },
  );
  const port = await freePort();
  let child: ChildProcess | undefined;

  const start = async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) return;
    const args = [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'max_connections=200',
    ];
    // Its own process group, so a kill takes the backends too.
    const started = spawn(join(bin, 'postgres'), args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      ...(user ?? {}),
    });
    child = started;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`postgres did not start: ${output}`)),
        30_000,
      );
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      started.stdout?.on('data', onData);
      started.stderr?.on('data', onData);
      started.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`postgres exited with ${code}: ${output}`));
      });
    });
  };
  // A worker that dies without running afterAll must not leave a server behind.
  process.once('exit', () => {
    if (child?.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }
  });

  const stop = async () => {
    const running = child;
    child = undefined;
    if (running?.pid === undefined || running.exitCode !== null) return;
    const exited = once(running, 'exit');
    process.kill(-running.pid, 'SIGKILL');
    await exited;
    // The backends die with their group; wait until none holds the data dir's shared memory.
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(-running.pid, 0);
      } catch {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  await start();
  return {
    port,
    url: `postgres://cirrus@127.0.0.1:${port}/postgres`,
    stop,
    start,
    destroy: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
