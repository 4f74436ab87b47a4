import { createHash, randomBytes } from 'node:crypto';
import {
  request as httpRequest,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
} from 'node:http';
import { connect, createServer } from 'node:net';

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The body as UTF-8. */
  text: string;
}

export interface RequestOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer;
  /** Abort the request after this long; default 10s, so that a hung server fails the test. */
  timeoutMs?: number;
}

/**
 * One HTTP request (GET unless told) over a fresh connection (no keep-alive agent, so no connection outlives
 * the test), its whole response collected.
 */
export function request(url: string, options: RequestOptions = {}): Promise<HttpResult> {
  const headers = { ...options.headers };
  // node sends a DELETE's body without a length unless told one.
  const named = (name: string) => Object.keys(headers).some((key) => key.toLowerCase() === name);
  if (options.body !== undefined && !named('content-length') && !named('transfer-encoding')) {
    headers['Content-Length'] = Buffer.byteLength(options.body);
  }
  const { req, response } = openRequest(url, {
    ...options,
    headers,
    method: options.method ?? 'GET',
  });
  if (options.body !== undefined) req.end(options.body);
  else req.end();
  return response;
}

export interface OpenRequest {
  /** The request, still open: write to it, then end it. */
  req: ClientRequest;
  /** Settles with the whole response (or the request's error). */
  response: Promise<HttpResult>;
  /**
   * Resolves as soon as the response's headers arrive. Its body is already being collected
   * into `response`: listen to the request's 'response' event to see chunks as they come.
   */
  responseStarted: Promise<IncomingMessage>;
}

/** Starts a request whose body the test writes itself, e.g. to keep a call in flight. */
export function openRequest(url: string, options: RequestOptions = {}): OpenRequest {
  const req = httpRequest(url, {
    method: options.method ?? 'POST',
    headers: options.headers,
    agent: false,
    signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
  });
  let started!: (res: IncomingMessage) => void;
  let failed!: (error: unknown) => void;
  const responseStarted = new Promise<IncomingMessage>((resolve, reject) => {
    started = resolve;
    failed = reject;
  });
  const response = new Promise<HttpResult>((resolve, reject) => {
    req.once('error', (error) => {
      failed(error);
      reject(error);
    });
    req.once('response', (res) => {
      started(res);
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () => {
        if (!res.complete) {
          reject(new Error('the response was cut before its end'));
          return;
        }
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          text: body.toString('utf8'),
        });
      });
    });
  });
  // The caller may only look at one of the two.
  responseStarted.catch(() => {});
  response.catch(() => {});
  return { req, response, responseStarted };
}

export interface TimedChunk {
  at: number;
  data: Buffer;
}

export interface StreamedResult extends HttpResult {
  /** Every body chunk with the time (performance.now()) it arrived. */
  chunks: TimedChunk[];
  endedAt: number;
}

/** A request whose response chunks are timed, to tell streaming from buffering. */
export function streamedRequest(
  url: string,
  options: RequestOptions = {},
): Promise<StreamedResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: options.method ?? 'GET',
      headers: options.headers,
      agent: false,
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: TimedChunk[] = [];
      res.on('data', (data: Buffer) => chunks.push({ at: performance.now(), data }));
      res.once('error', reject);
      res.once('end', () => {
        const body = Buffer.concat(chunks.map((chunk) => chunk.data));
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          text: body.toString('utf8'),
          chunks,
          endedAt: performance.now(),
        });
      });
    });
    req.end(options.body);
  });
}

export interface UploadResult {
  status: number;
  headers: IncomingHttpHeaders;
  sentBytes: number;
  sentSha256: string;
  receivedBytes: number;
  receivedSha256: string;
  /** Response bytes that had arrived when the last request byte was handed to the socket. */
  receivedBeforeUploadEnd: number;
  /** Whether the response's headers arrived before the upload finished. */
  respondedBeforeUploadEnd: boolean;
}

/**
 * Uploads `totalBytes` of random data in `chunkBytes` pieces (chunked encoding unless
 * `contentLength` is set), with backpressure, while reading the response as it comes: the
 * hashes tell whether the body came back intact, `receivedBeforeUploadEnd` whether it streamed.
 *
 * So that kernel buffers cannot hide buffering (or fake it), the upload pauses once
 * `probeBytes` are sent until the first response byte arrives (for at most `probeTimeoutMs`):
 * an echo that streams answers then; one that buffers answers only after the whole upload.
 */
export function streamingUpload(
  url: string,
  {
    totalBytes,
    chunkBytes = 64 * 1024,
    contentLength = false,
    headers = {},
    timeoutMs = 30_000,
    probeBytes = 1024 * 1024,
    probeTimeoutMs = 5000,
  }: {
    totalBytes: number;
    chunkBytes?: number;
    contentLength?: boolean;
    headers?: OutgoingHttpHeaders;
    timeoutMs?: number;
    probeBytes?: number;
    probeTimeoutMs?: number;
  },
): Promise<UploadResult> {
  const data = randomBytes(totalBytes);
  const sentSha256 = createHash('sha256').update(data).digest('hex');
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: 'POST',
      agent: false,
      headers: {
        'Content-Type': 'application/octet-stream',
        ...(contentLength ? { 'Content-Length': totalBytes } : {}),
        ...headers,
      },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const received = createHash('sha256');
    let receivedBytes = 0;
    let receivedBeforeUploadEnd = -1;
    let responded = false;
    let respondedBeforeUploadEnd = false;
    let firstData: (() => void) | undefined;
    req.once('error', reject);
    req.once('response', (res) => {
      responded = true;
      res.on('data', (chunk: Buffer) => {
        receivedBytes += chunk.length;
        received.update(chunk);
        firstData?.();
      });
      res.once('error', reject);
      res.once('end', () => {
        if (!res.complete) {
          reject(new Error(`the response was cut after ${receivedBytes} bytes`));
          return;
        }
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          sentBytes: totalBytes,
          sentSha256,
          receivedBytes,
          receivedSha256: received.digest('hex'),
          receivedBeforeUploadEnd,
          respondedBeforeUploadEnd,
        });
      });
    });
    let offset = 0;
    let probed = false;
    const pump = (): void => {
      while (offset < totalBytes) {
        if (!probed && offset >= probeBytes) {
          probed = true;
          if (receivedBytes === 0) {
            const timer = setTimeout(() => firstData?.(), probeTimeoutMs);
            firstData = () => {
              firstData = undefined;
              clearTimeout(timer);
              pump();
            };
            return;
          }
        }
        const chunk = data.subarray(offset, offset + chunkBytes);
        offset += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end(() => {
        receivedBeforeUploadEnd = receivedBytes;
        respondedBeforeUploadEnd = responded;
      });
    };
    pump();
  });
}

/** A TCP port that was free a moment ago (the OS's pick), for servers that need a fixed one. */
export async function freePort(): Promise<number> {
  // Below Linux's ephemeral range (32768+), where listen(0) and outgoing connections take their
  // ports, so a port found free here is not handed to another process before the test binds it.
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(port)) return port;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Resolves with the error code of a TCP connect to the port, or 'connected'. */
export function tryConnect(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}
