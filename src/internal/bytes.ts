import { raceAbort } from './abort.js';

/** What {@link readUpTo} read. */
export interface ReadResult {
  readonly chunks: Uint8Array[];
  readonly size: number;
  /** True when the stream holds more than `limit` bytes; it is then left unfinished. */
  readonly exceeded: boolean;
}

/**
 * Reads `reader` until it ends or more than `limit` bytes arrived, never holding more than `limit`
 * plus one chunk. A `signal` abort rejects with its reason and cancels the reader.
 */
export async function readUpTo(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  limit: number,
  signal?: AbortSignal,
): Promise<ReadResult> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await raceAbort(reader.read(), signal);
      if (done) return { chunks, size, exceeded: false };
      chunks.push(value);
      size += value.byteLength;
      if (size > limit) return { chunks, size, exceeded: true };
    }
  } catch (error) {
    reader.cancel(error).catch(() => {});
    throw error;
  }
}

/** Joins chunks into one array of `size` bytes. */
export function concat(chunks: readonly Uint8Array[], size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * Reads up to `limit` bytes. If the stream ends within the limit, `buffered` holds all of it and
 * `rest` is undefined; otherwise `rest` is a stream of everything read so far followed by the
 * remainder, to be sent once.
 */
export async function bufferUpTo(
  body: ReadableStream<Uint8Array>,
  limit: number,
  signal: AbortSignal | undefined,
): Promise<{ buffered: Uint8Array<ArrayBuffer>; rest?: ReadableStream<Uint8Array> }> {
  const reader = body.getReader();
  const { chunks, size, exceeded } = await readUpTo(reader, limit, signal);
  if (!exceeded) return { buffered: concat(chunks, size) };
  const rest = new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      const chunk = chunks.shift();
      if (chunk !== undefined) return controller.enqueue(chunk);
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return { buffered: new Uint8Array(), rest };
}
