import { ValidationError } from '../core/errors.js';

/**
 * A stack file that cannot be used. The message is one line,
 * `stack.yml:12:7: functions.hello.environment: must be a map, not a list`; the parts are kept
 * as fields too.
 */
export class StackError extends ValidationError {
  readonly file: string | undefined;
  readonly field: string | undefined;
  readonly line: number | undefined;
  readonly column: number | undefined;

  constructor(
    where: { file?: string; field?: string; line?: number; column?: number },
    message: string,
    options?: ErrorOptions,
  ) {
    const position =
      where.line === undefined ? '' : `${where.line}${where.column ? `:${where.column}` : ''}`;
    const prefix =
      where.file !== undefined
        ? `${where.file}${position ? `:${position}` : ''}: `
        : position
          ? `line ${position}: `
          : '';
    super(`${prefix}${where.field ? `${where.field}: ` : ''}${message}`, options);
    this.file = where.file;
    this.field = where.field;
    this.line = where.line;
    this.column = where.column;
  }
}
