/**
 * Function logs, as `/system/logs` serves them: a query in, newline-delimited JSON out.
 */

/**
 * A logs query, parsed from `/system/logs?name=&namespace=&instance=&tail=&follow=&since=`.
 * An in-process shape (it never travels as JSON), so `since` is a Date.
 */
export interface LogRequest {
  /** The function whose logs to read. */
  name: string;
  namespace?: string;
  /** One replica only (a pod, container or process id); absent: all replicas. */
  instance?: string;
  /** At most this many of the most recent lines; absent: no limit. */
  tail?: number;
  /** Keep the stream open and send lines as they are written. */
  follow: boolean;
  /** Only lines written at or after this time. */
  since?: Date;
}

/** One line of the `application/x-ndjson` answer. */
export interface LogMessage {
  name: string;
  namespace: string;
  /** The replica that wrote the line. */
  instance: string;
  /** When the line was written: RFC 3339 text, as Go writes a time.Time. */
  timestamp: string;
  text: string;
}
