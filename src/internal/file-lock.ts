import { nodeBuiltin, randomHex, runtimeProcess } from './runtime.js';

// Node-only, like its one caller (fromEnv's SF_REFRESH_TOKEN_FILE, which checks node:fs is there):
// the built-ins are reached when a lock is taken, so loading the root entry imports none.
const fs = () => nodeBuiltin('node:fs') as typeof import('node:fs');
const hostname = () => (nodeBuiltin('node:os') as typeof import('node:os')).hostname();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const ownPid = () => (runtimeProcess() as NodeJS.Process).pid;

/** The longest pause between two looks at a held lock (each pause is jittered below it). */
const POLL_MAX_MS = 100;

/** A `.break` guard this old was left by a process that died while breaking a lock: removed. */
const GUARD_STALE_MS = 5_000;

/** How long {@link acquireFileLock} waits, and when it takes a lock over. */
export interface FileLockOptions {
  /** The longest wait for a lock another holder has. */
  readonly waitMs: number;
  /** A lock older than this is abandoned, whoever holds it, and taken over. */
  readonly staleMs: number;
}

/** A lock file this process holds. */
export interface FileLock {
  /** Removes the lock file if it is still this holder's. Never throws. */
  release(): void;
}

/**
 * Takes the exclusive lock file `path`, shared by every process on the machine (or on a shared
 * file system): created with O_EXCL (`wx`, 0600), it holds `{"pid","host","time","nonce"}` as JSON.
 * A lock whose process is gone (same host, pid not alive) or older than `staleMs` is taken over;
 * any other is waited for, at most `waitMs`. Answers `undefined` when the wait ran out; throws the
 * file system's error when the lock cannot be created at all (a missing or read-only directory).
 */
export async function acquireFileLock(
  path: string,
  options: FileLockOptions,
): Promise<FileLock | undefined> {
  const deadline = Date.now() + options.waitMs;
  for (let attempt = 0; ; attempt++) {
    const lock = tryCreate(path);
    if (lock !== undefined) return lock;
    const seen = readQuietly(path);
    if (seen === undefined) continue; // released meanwhile
    if (isAbandoned(path, seen, options.staleMs) && breakLock(path, seen)) continue;
    const left = deadline - Date.now();
    if (left <= 0) return undefined;
    const pauseMs = Math.min(POLL_MAX_MS, 5 * 2 ** attempt);
    await sleep(Math.min(left, pauseMs / 2 + (Math.random() * pauseMs) / 2));
  }
}

function tryCreate(path: string): FileLock | undefined {
  const content = JSON.stringify({
    pid: ownPid(),
    host: hostname(),
    time: Date.now(),
    nonce: randomHex(8),
  });
  let fd: number;
  try {
    fd = fs().openSync(path, 'wx', 0o600);
  } catch (error) {
    if (codeOf(error) === 'EEXIST') return undefined;
    throw error;
  }
  try {
    fs().writeSync(fd, content);
  } catch (error) {
    fs().closeSync(fd);
    unlinkQuietly(path);
    throw error;
  }
  fs().closeSync(fd);
  return {
    release: () => {
      if (readQuietly(path) === content) unlinkQuietly(path);
    },
  };
}

/**
 * Whether the lock that reads `seen` was left behind. Until its holder has written it, a lock is
 * empty: then its file's age stands in for the time.
 */
function isAbandoned(path: string, seen: string, staleMs: number): boolean {
  let holder: { pid?: unknown; host?: unknown; time?: unknown } = {};
  try {
    const parsed: unknown = JSON.parse(seen);
    if (typeof parsed === 'object' && parsed !== null) holder = parsed;
  } catch {
    // Not written yet, or not ours: judged by age alone.
  }
  const time = typeof holder.time === 'number' ? holder.time : modifiedAt(path);
  if (time === undefined) return false;
  if (Date.now() - time > staleMs) return true;
  return (
    holder.host === hostname() &&
    typeof holder.pid === 'number' &&
    Number.isSafeInteger(holder.pid) &&
    holder.pid > 0 &&
    !isAlive(holder.pid)
  );
}

/**
 * Removes the abandoned lock that read `seen`, unless it changed meanwhile: two waiters that both
 * judged it abandoned must not remove the fresh lock one of them has just taken. A `.break` guard,
 * itself taken with O_EXCL, lets one waiter at a time look and remove. Answers whether the lock is
 * gone.
 */
function breakLock(path: string, seen: string): boolean {
  const guard = `${path}.break`;
  let fd: number;
  try {
    fd = fs().openSync(guard, 'wx', 0o600);
  } catch (error) {
    const since = codeOf(error) === 'EEXIST' ? modifiedAt(guard) : undefined;
    if (since !== undefined && Date.now() - since > GUARD_STALE_MS) unlinkQuietly(guard);
    return false;
  }
  fs().closeSync(fd);
  try {
    const now = readQuietly(path);
    if (now === seen) unlinkQuietly(path);
    return readQuietly(path) === undefined;
  } finally {
    unlinkQuietly(guard);
  }
}

function isAlive(pid: number): boolean {
  try {
    (runtimeProcess() as NodeJS.Process).kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return codeOf(error) === 'EPERM';
  }
}

function readQuietly(path: string): string | undefined {
  try {
    return fs().readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function modifiedAt(path: string): number | undefined {
  try {
    return fs().statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

function unlinkQuietly(path: string): void {
  try {
    fs().unlinkSync(path);
  } catch {
    // Gone already, or not ours to remove: either way not held by us.
  }
}

function codeOf(error: unknown): unknown {
  return (error as { code?: unknown } | undefined)?.code;
}
