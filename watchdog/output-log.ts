import type { Readable, Writable } from 'node:stream';

export interface OutputLogOptions {
  /** Prefix each line with the date and the stream's name, as OpenFaaS's watchdogs do. */
  prefix: boolean;
  /** Longest line kept whole (a longer one is cut into pieces); -1 = pass output through as it arrives. */
  maxLineBytes: number;
}

/** Go's log timestamp (`2006/01/02 15:04:05`), which OpenFaaS prefixes every function line with. */
export function logTimestamp(date = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${date.getFullYear()}/${pad(date.getMonth() + 1)}/${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/**
 * Copies a function's output stream into the watchdog's log, line by line:
 * `2026/01/02 15:04:05 stdout: hello` with prefixes on, `hello` without.
 */
export function logOutput(
  source: Readable,
  name: 'stdout' | 'stderr',
  destination: Writable,
  options: OutputLogOptions,
): void {
  const writeLine = (line: string) =>
    destination.write(options.prefix ? `${logTimestamp()} ${name}: ${line}\n` : `${line}\n`);

  if (options.maxLineBytes < 0) {
    source.on('data', (chunk: Buffer) =>
      destination.write(options.prefix ? `${logTimestamp()} ${name}: ${chunk.toString()}` : chunk),
    );
    return;
  }

  let partial = '';
  source.setEncoding('utf8');
  source.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) writeLine(line);
    while (Buffer.byteLength(partial) > options.maxLineBytes) {
      writeLine(partial.slice(0, options.maxLineBytes));
      partial = partial.slice(options.maxLineBytes);
    }
  });
  source.on('end', () => {
    if (partial !== '') writeLine(partial);
    partial = '';
  });
}
