import type { Dispatcher } from 'undici';
import type { HeaderMap } from '../core/invoker.js';

/**
 * An undici answer read whole: its body (the socket freed even when reading fails) and its
 * headers as a HeaderMap. Shared by the invokers that call a function over HTTP.
 */
export async function readAnswer(
  answer: Dispatcher.ResponseData<unknown>,
): Promise<{ status: number; headers: HeaderMap; body: Uint8Array }> {
  let body: Uint8Array;
  try {
    body = new Uint8Array(await answer.body.arrayBuffer());
  } catch (error) {
    answer.body.destroy();
    throw error;
  }
  const headers: HeaderMap = {};
  for (const name in answer.headers) {
    const value = answer.headers[name];
    if (value !== undefined) headers[name] = value;
  }
  return { status: answer.statusCode, headers, body };
}
