import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// Every ```ts snippet in the README compiles under the project's strict settings against the real
// sources: imports, option names, method names and types are checked. A name a snippet leaves to
// the reader (`session`, `log`, `db`…) is declared `any` for it, found by a first pass; nothing
// else is relaxed.
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

interface Snippet {
  readonly line: number;
  readonly code: string;
}

function snippets(): Snippet[] {
  const found: Snippet[] = [];
  const lines = readme.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== '```ts') continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && lines[end]?.trim() !== '```') end++;
    found.push({ line: start + 1, code: lines.slice(start, end).join('\n') });
    i = end;
  }
  return found;
}

/** Names TypeScript could not find (TS2304, TS2552, TS18004): the package's, or the reader's own. */
const UNKNOWN_NAME = new Set([2304, 2552, 18004]);

/**
 * Implicit `any` parameters (TS7006, TS7031): they arise only in a callback handed to something of
 * the reader's (an Express `app.get`), which is `any` here; the package's callbacks are typed.
 */
const READERS_CALLBACK = new Set([7006, 7031]);

/** The package's entry points, as a snippet imports them. */
const ENTRIES: Record<string, string> = {
  'cirrus-auth': 'src/index.ts',
  'cirrus-auth/fetch': 'src/adapters/fetch.ts',
  'cirrus-auth/axios': 'src/adapters/axios.ts',
  'cirrus-auth/ky': 'src/adapters/ky.ts',
  'cirrus-auth/got': 'src/adapters/got.ts',
  'cirrus-auth/undici': 'src/adapters/undici.ts',
  'cirrus-auth/jsforce': 'src/adapters/jsforce.ts',
  'cirrus-auth/grpc': 'src/adapters/grpc.ts',
  'cirrus-auth/streaming': 'src/adapters/streaming.ts',
  'cirrus-auth/redis': 'src/stores/redis.ts',
  'cirrus-auth/postgres': 'src/stores/postgres.ts',
  'cirrus-auth/testing': 'src/testing/index.ts',
};

function compile(files: Map<string, string>) {
  const config = ts.readConfigFile(join(root, 'tsconfig.json'), ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const options = { ...parsed.options, noEmit: true, noUnusedLocals: false };
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  const exists = host.fileExists.bind(host);
  const source = host.getSourceFile.bind(host);
  host.readFile = (name) => files.get(name) ?? read(name);
  host.fileExists = (name) => files.has(name) || exists(name);
  host.getSourceFile = (name, language, onError, fresh) => {
    const text = files.get(name);
    return text === undefined
      ? source(name, language, onError, fresh)
      : ts.createSourceFile(name, text, language, true);
  };
  const entries = Object.values(ENTRIES).map((e) => join(root, e));
  const program = ts.createProgram([...files.keys(), ...entries], options, host);
  // Every name the package exports: a snippet that uses one without importing it gets the import.
  const checker = program.getTypeChecker();
  const exported = new Map<string, { from: string; value: boolean }>();
  for (const [specifier, entry] of Object.entries(ENTRIES)) {
    const file = program.getSourceFile(join(root, entry));
    const symbol = file && checker.getSymbolAtLocation(file);
    if (symbol === undefined) continue;
    for (const e of checker.getExportsOfModule(symbol)) {
      const target = e.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(e) : e;
      if (!exported.has(e.name)) {
        exported.set(e.name, {
          from: specifier,
          value: (target.flags & ts.SymbolFlags.Value) !== 0,
        });
      }
    }
  }
  const diagnostics = [...files.keys()].map((name) => {
    const file = program.getSourceFile(name);
    return ts.getPreEmitDiagnostics(program, file).filter((d) => d.file?.fileName === name);
  });
  return { diagnostics, exported };
}

describe('README snippets', () => {
  it('every ts snippet compiles against the sources, strict', () => {
    const all = snippets();
    expect(all.length).toBeGreaterThan(15);
    const name = (i: number) => join(root, 'test', `.readme-snippet-${i}.ts`);
    // Pass 1: which names each snippet leaves to the reader.
    const first = compile(new Map(all.map((s, i) => [name(i), `${s.code}\nexport {};\n`])));
    const preambles = first.diagnostics.map((diagnostics) => {
      const names = new Set<string>();
      for (const d of diagnostics) {
        if (!UNKNOWN_NAME.has(d.code)) continue;
        const match = /['‘]([A-Za-z_$][\w$]*)['’]/.exec(
          ts.flattenDiagnosticMessageText(d.messageText, '\n'),
        );
        if (match?.[1] !== undefined) names.add(match[1]);
      }
      return [...names]
        .map((n) => {
          // Capitalised names only (classes, types, constants): a lower-case one is usually the
          // reader's variable (`refreshToken`), even where the package exports a function of it.
          const known = /^[A-Z]/.test(n) ? first.exported.get(n) : undefined;
          if (known !== undefined) {
            return `import { ${known.value ? '' : 'type '}${n} } from '${known.from}';`;
          }
          return `declare const ${n}: any;\ntype ${n} = any;`;
        })
        .join('\n');
    });
    // Pass 2: with those declared, nothing else may be wrong.
    const second = compile(
      new Map(all.map((s, i) => [name(i), `${preambles[i]}\n${s.code}\nexport {};\n`])),
    );
    const problems = second.diagnostics.flatMap((diagnostics, i) =>
      diagnostics
        .filter((d) => !READERS_CALLBACK.has(d.code))
        .map((d) => {
          const at =
            d.file && d.start !== undefined
              ? d.file.getLineAndCharacterOfPosition(d.start)
              : undefined;
          const preambleLines =
            preambles[i] === '' ? 1 : (preambles[i] as string).split('\n').length;
          const line = at === undefined ? '?' : (all[i] as Snippet).line + at.line - preambleLines;
          return `README.md:${line}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
        }),
    );
    expect(problems).toEqual([]);
  }, 120_000);
});
