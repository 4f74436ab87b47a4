import { existsSync, readFileSync } from 'node:fs';
import { deployProcess } from './hub.js';

/** What the recording function wrote for one firing. */
export interface Firing {
  topic: string;
  connector: string;
  scheduledMs: number;
  schedule: string;
  /** When the function started, ms since the epoch. */
  ranMs: number;
}

/**
 * A forked function that appends one line per call to `file`: the cron headers and when it ran
 * (then works `seconds`).
 */
export function recorderProcess(file: string, seconds = 0): string {
  const line =
    '$Http_X_Topic|$Http_X_Connector|$Http_X_Scheduled_Time|$Http_X_Schedule|$(date +%s%3N)';
  return `sh -c 'echo "${line}" >> ${file}; sleep ${seconds}'`;
}

export function firings(file: string): Firing[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [topic = '', connector = '', scheduled = '', schedule = '', ran = ''] = line.split('|');
      return { topic, connector, scheduledMs: Date.parse(scheduled), schedule, ranMs: Number(ran) };
    });
}

/** Deploys `name` with `topic: cron-function` and `annotations`. */
export function deployCron(
  url: string,
  name: string,
  process: string,
  annotations: Record<string, string>,
): Promise<void> {
  return deployProcess(url, name, process, { topic: 'cron-function', ...annotations });
}
