import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { ScheduleError, parseSchedules } from '../../connectors/cron/schedule.js';
import { DeliveryError, type InvokerResponse } from '../../connectors/sdk/controller.js';
import type { FnbusError } from '../../core/errors.js';
import {
  BadGatewayError,
  httpAnswer,
  PayloadTooLargeError,
  ValidationError,
} from '../../core/errors.js';
import { BodyTooLargeError, readBody } from '../../watchdog/call.js';
import { UpstreamError } from '../../watchdog/upstream-client.js';

/** The errors made at fnbus's edges (connectors, watchdog) answer with their own status. */
describe('errors of the connectors and the watchdog', () => {
  it('DeliveryError: a 502 naming each function not delivered to', () => {
    const failed = [
      { function: 'a', status: 500 },
      { function: 'b', error: 'ECONNREFUSED' },
    ] as InvokerResponse[];
    const error = new DeliveryError(failed);
    assert.ok(error instanceof BadGatewayError);
    assert.equal(error.name, 'DeliveryError');
    assert.equal(error.failed, failed);
    assert.deepEqual(httpAnswer(error), {
      status: 502,
      text: 'not delivered to a (500), b (ECONNREFUSED)\n',
      headers: {},
    });
  });

  it('ScheduleError: a bad schedule annotation is a 400 saying what is wrong', () => {
    const caught = (annotation: string, zone?: string): FnbusError => {
      try {
        parseSchedules(annotation, zone);
      } catch (error) {
        assert.ok(error instanceof ScheduleError, String(error));
        return error;
      }
      return assert.fail(`"${annotation}" was taken`);
    };
    for (const [annotation, zone] of [
      ['* * *'],
      ['61 * * * *'],
      ['@every 10ms'],
      [' ; '],
      ['@sometimes'],
      ['* * * * *', 'Mars/Base'],
    ] as const) {
      const error = caught(annotation, zone);
      assert.ok(error instanceof ValidationError);
      assert.equal(httpAnswer(error).status, 400);
      assert.equal(httpAnswer(error).text, `${error.message}\n`);
    }
    assert.ok(caught('61 * * * *').cause instanceof Error, "cron-parser's error is kept as cause");
  });

  it('BodyTooLargeError: readBody past its limit, a 413', async () => {
    const req = new PassThrough();
    const read = new Promise<Error | undefined>((resolve) =>
      readBody(req as unknown as IncomingMessage, 4, (error) => resolve(error)),
    );
    req.end(Buffer.from('more than four bytes'));
    const error = await read;
    assert.ok(error instanceof BodyTooLargeError, String(error));
    assert.ok(error instanceof PayloadTooLargeError);
    assert.deepEqual(httpAnswer(error), {
      status: 413,
      text: 'request body over 4 bytes\n',
      headers: {},
    });
  });

  it("UpstreamError: a function's broken HTTP answer, a 502", () => {
    const error = new UpstreamError('bad status line "HTTP/9"');
    assert.ok(error instanceof BadGatewayError);
    assert.equal(error.name, 'UpstreamError');
    assert.equal(httpAnswer(error).status, 502);
    assert.equal(httpAnswer(error).text, 'bad status line "HTTP/9"\n');
  });
});
