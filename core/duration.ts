const unitMs: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const bareSeconds = /^\d+(\.\d+)?$/;
const goDuration = /^((\d+(\.\d+)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$/;
const goDurationPart = /(\d+(?:\.\d+)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;

/**
 * Parses a duration as OpenFaaS does: a Go duration (`10s`, `1m30s`, `500ms`, `1.5h`) or a bare
 * number of seconds (`10`). Returns milliseconds, or undefined when the text is not a duration.
 * Negative durations are refused: no timeout in fnbus means anything by being negative.
 */
export function parseDurationMs(text: string): number | undefined {
  const value = text.trim();
  if (bareSeconds.test(value)) return Number(value) * 1000;
  if (!goDuration.test(value)) return undefined;
  let total = 0;
  for (const [, amount, unit] of value.matchAll(goDurationPart)) {
    total += Number(amount) * (unitMs[unit ?? ''] ?? Number.NaN);
  }
  return Number.isFinite(total) ? total : undefined;
}

/** Formats milliseconds the way Go prints a duration, for messages and logs (`1m30s`, `500ms`). */
export function formatDuration(ms: number): string {
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  const hours = Math.floor(ms / 3_600_000);
  const minutes = Math.floor((ms % 3_600_000) / 60_000);
  const seconds = (ms % 60_000) / 1000;
  return `${hours ? `${hours}h` : ''}${hours || minutes ? `${minutes}m` : ''}${seconds}s`;
}
