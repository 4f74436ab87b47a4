/** Writes to stdout: a command's output, which scripts read. */
export function print(text: string): void {
  process.stdout.write(text);
}

/** Rows (the first is the header) in columns two spaces apart. */
export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths?.[i] ?? 0)))
        .join('  '),
    )
    .map((line) => `${line}\n`)
    .join('');
}
