import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { scrubbedCause } from '../../src/internal/scrub.js';
import { expectNoSecrets } from '../_secrets.js';

const SECRET = 'client_secret=scrub-me-8c1d';

describe('scrubbedCause', () => {
  it('keeps class names and codes along the chain, and no text', () => {
    const parser = Object.assign(new Error(`bad byte near ${SECRET}`), {
      name: 'HTTPParserError',
      code: 'HPE_INVALID_HEADER_TOKEN',
      data: SECRET,
    });
    const scrubbed = scrubbedCause(new TypeError('fetch failed', { cause: parser }));
    expect(scrubbed).toBeInstanceOf(Error);
    expect(scrubbed).toMatchObject({ name: 'TypeError', message: 'details withheld' });
    expect(scrubbed?.cause).toMatchObject({
      name: 'HTTPParserError',
      code: 'HPE_INVALID_HEADER_TOKEN',
      message: 'HPE_INVALID_HEADER_TOKEN',
      stack: 'HTTPParserError: HPE_INVALID_HEADER_TOKEN',
    });
    expect(scrubbed?.cause).not.toHaveProperty('data');
    expectNoSecrets(scrubbed, [SECRET, 'scrub-me']);
    expect(inspect(scrubbed)).toContain('HPE_INVALID_HEADER_TOKEN');
  });

  it('drops a name or code that is not an identifier, and what is not an object', () => {
    const odd = Object.assign(new Error('x'), { name: `Oops ${SECRET}`, code: 'lower-case' });
    expect(scrubbedCause(odd)).toMatchObject({ name: 'Error', message: 'details withheld' });
    expect(scrubbedCause(odd)).not.toHaveProperty('code');
    expect(scrubbedCause(SECRET)).toBeUndefined();
    expect(scrubbedCause(undefined)).toBeUndefined();
    expect(scrubbedCause({ code: 'ECONNRESET' })).toMatchObject({
      name: 'Object',
      code: 'ECONNRESET',
    });
  });

  it('survives a getter that throws and a cause cycle', () => {
    const hostile = {
      get name(): string {
        throw new Error(SECRET);
      },
    };
    expect(scrubbedCause(hostile)).toMatchObject({ name: 'Error' });
    const loop: { cause?: unknown; code: string } = { code: 'ELOOP' };
    loop.cause = loop;
    let depth = 0;
    for (let at: unknown = scrubbedCause(loop); at instanceof Error; at = at.cause) depth++;
    expect(depth).toBe(4);
  });
});
