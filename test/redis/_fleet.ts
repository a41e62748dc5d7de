import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { until } from '../_wait.ts';

const CHILD = fileURLToPath(new URL('./fleet-child.mjs', import.meta.url));

/** What a fleet process is started with (see fleet-child.mjs). */
export interface FleetConfig {
  /** The store's URL: `redis://…` or `postgres://…`. */
  storeUrl: string;
  client?: 'redis' | 'ioredis' | 'postgres';
  grant?: 'client_credentials' | 'refresh_token';
  clientId: string;
  clientSecret: string;
  loginUrl: string;
  instanceUrl: string;
  refreshToken?: string;
  storeKey?: string;
  lockTtlMs?: number;
  commandTimeoutMs?: number;
  encryptionKey?: string;
  /** Leave the store out (each process on its own), for comparison. */
  noStore?: boolean;
}

/** An event a fleet process reported on its own. */
export type FleetEvent =
  | { type: 'mintStart'; pid: number }
  | { type: 'store'; outcome: 'unavailable' | 'rejoined' }
  | { type: 'rotated'; token: string };

export interface FleetMember {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly events: FleetEvent[];
  /** Sends a command and resolves with the child's answer (rejects with its error). */
  ask<T = Record<string, unknown>>(cmd: string, args?: Record<string, unknown>): Promise<T>;
}

/** Forks `size` fleet processes, each with its own session on the shared store. */
export async function startFleet(size: number, config: FleetConfig): Promise<FleetMember[]> {
  return Promise.all(Array.from({ length: size }, () => startMember(config)));
}

async function startMember(config: FleetConfig): Promise<FleetMember> {
  const child = fork(CHILD, [], {
    env: { ...process.env, FLEET_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const events: FleetEvent[] = [];
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  let nextId = 0;
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`fleet process exited early (${code})`)));
    child.on(
      'message',
      (message: { type: string; id?: number; ok?: boolean } & Record<string, unknown>) => {
        if (message.type === 'ready') resolve(message.pid as number);
        else if (message.type === 'reply') {
          const pending = waiting.get(message.id as number);
          waiting.delete(message.id as number);
          if (message.ok) pending?.resolve(message.result);
          else pending?.reject(Object.assign(new Error('fleet command failed'), message.error));
        } else events.push(message as unknown as FleetEvent);
      },
    );
  });
  child.on('exit', () => {
    for (const pending of waiting.values()) pending.reject(new Error('fleet process exited'));
    waiting.clear();
  });
  return {
    child,
    pid,
    events,
    ask<T>(cmd: string, args: Record<string, unknown> = {}) {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ ...args, cmd, id });
      });
    },
  };
}

/** Asks every live member to exit, and kills any that does not within a second. */
export async function stopFleet(fleet: readonly FleetMember[]): Promise<void> {
  await Promise.all(
    fleet.map(async (member) => {
      if (member.child.exitCode !== null || member.child.signalCode !== null) return;
      const exited = new Promise((resolve) => member.child.once('exit', resolve));
      member.ask('exit').catch(() => {});
      const timer = setTimeout(() => member.child.kill('SIGKILL'), 1_000);
      await exited;
      clearTimeout(timer);
    }),
  );
}

/**
 * Resolves once every load worker of every member has had two more successful requests than when
 * it was called. Called right after a revocation, that means each worker has met it (its 401, the
 * one retry) and gone on with the new token: the second success was sent after the first came back,
 * so after the call. Counting the fleet's successes in total instead lets one process starved of
 * CPU still be mid-retry when the next revocation comes, and fail for a reason of the test's own.
 */
export async function everyWorkerGoesOn(fleet: readonly FleetMember[]): Promise<void> {
  const okByWorker = () =>
    Promise.all(fleet.map((m) => m.ask<{ okByWorker: number[] }>('loadCounts'))).then((all) =>
      all.flatMap((counts) => counts.okByWorker),
    );
  const before = await okByWorker();
  await until(async () => (await okByWorker()).every((ok, i) => ok >= (before[i] ?? 0) + 2));
}

export { until } from '../_wait.ts';
