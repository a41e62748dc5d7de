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
