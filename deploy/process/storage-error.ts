import { FnbusError, StorageError } from '../../core/errors.js';

/**
 * What went wrong with a file operation, without its path: the errno code (`ENOSPC`, `EACCES`)
 * when there is one. Answers and logs never show where the state folder is.
 */
export function safeReason(error: unknown): string {
  if (error instanceof FnbusError) return error.message;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'unexpected error';
}

/**
 * Runs a file operation; a failure that is not already an fnbus error (a 4xx that says what was
 * wrong) becomes a 500 that says what could not be done and why, never where.
 */
export async function onDisk<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof FnbusError) throw error;
    throw new StorageError(`${what}: ${safeReason(error)}`, { cause: error });
  }
}
