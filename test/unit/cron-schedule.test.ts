import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSchedules, ScheduleError } from '../../connectors/cron/schedule.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

/** The first `n` firings after `fromIso`. */
function firings(annotation: string, fromIso: string, n: number, zone?: string): string[] {
  const [schedule] = parseSchedules(annotation, zone);
  const out: string[] = [];
  let t = at(fromIso);
  for (let i = 0; i < n; i++) out.push(iso((t = schedule!.next(t))));
  return out;
}

describe('cron schedules', () => {
  it('reads 5 fields from the minute, as OpenFaaS, strictly after the time given', () => {
    assert.deepEqual(firings('*/15 * * * *', '2026-01-01T10:00:00.000Z', 3), [
      '2026-01-01T10:15:00.000Z',
      '2026-01-01T10:30:00.000Z',
      '2026-01-01T10:45:00.000Z',
    ]);
  });

  it('reads 6 fields from the second', () => {
    assert.deepEqual(firings('*/20 * * * * *', '2026-01-01T10:00:05.500Z', 3), [
      '2026-01-01T10:00:20.000Z',
      '2026-01-01T10:00:40.000Z',
      '2026-01-01T10:01:00.000Z',
    ]);
  });

  it('takes descriptors and @every, the latter on whole multiples since the epoch', () => {
    assert.deepEqual(firings('@hourly', '2026-01-01T10:20:00Z', 2), [
      '2026-01-01T11:00:00.000Z',
      '2026-01-01T12:00:00.000Z',
    ]);
    assert.deepEqual(firings('@every 30s', '2026-01-01T10:00:05.123Z', 2), [
      '2026-01-01T10:00:30.000Z',
      '2026-01-01T10:01:00.000Z',
    ]);
    assert.deepEqual(firings('@every 1m30s', '2026-01-01T00:00:00Z', 1), [
      '2026-01-01T00:01:30.000Z',
    ]);
  });

  it('takes several schedules separated by ;', () => {
    const schedules = parseSchedules('0 9 * * 1-5; @every 1h ;');
    assert.deepEqual(
      schedules.map((s) => s.text),
      ['0 9 * * 1-5', '@every 1h'],
    );
  });

  it('reads a time zone, with daylight saving', () => {
    // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer (from 29 March 2026).
    assert.deepEqual(firings('0 9 * * *', '2026-03-27T12:00:00Z', 3, 'Europe/Berlin'), [
      '2026-03-28T08:00:00.000Z',
      '2026-03-29T07:00:00.000Z',
      '2026-03-30T07:00:00.000Z',
    ]);
    // 02:30 does not exist on 29 March in Berlin: that day fires once, after the change.
    const spring = firings('30 2 * * *', '2026-03-28T12:00:00Z', 2, 'Europe/Berlin');
    assert.equal(new Set(spring).size, 2);
    assert.ok(spring[0]!.startsWith('2026-03-29'));
    // 02:30 happens twice on 25 October: it fires once.
    const autumn = firings('30 2 * * *', '2026-10-24T12:00:00Z', 2, 'Europe/Berlin');
    assert.ok(autumn[0]!.startsWith('2026-10-25'));
    assert.ok(autumn[1]!.startsWith('2026-10-26'));
  });

  it('says what is wrong with a bad schedule or time zone', () => {
    const wrong = (annotation: string, zone?: string) =>
      assert.throws(() => parseSchedules(annotation, zone), ScheduleError);
    assert.throws(() => parseSchedules('* * *'), /5 fields \(6 with seconds\), not 3/);
    assert.throws(() => parseSchedules('61 * * * *'), /61/);
    assert.throws(() => parseSchedules('@every 10ms'), /1s or more/);
    assert.throws(() => parseSchedules('  ;  '), /empty/);
    assert.throws(() => parseSchedules('* * * * *', 'Mars/Base'), /IANA/);
    wrong('@sometimes');
  });
});
