/**
 * One message from an event source (a Kafka record, an MQTT publish, a cron tick, a webhook
 * call), in a shape every connector shares, so the topic map and invoker are written once.
 */
export interface SourceEvent {
  /** Matched exactly against the `topic` annotation of each function. */
  topic: string;
  body: Uint8Array;
  /**
   * Sent to the function as request headers: the source's own metadata under `X-` names
   * (e.g. `X-Kafka-Partition`), plus `Content-Type` when the source knows it.
   */
  headers: Record<string, string>;
  /** The source's id for the message (offset, message id), for logs and de-duplication. */
  id?: string;
  /**
   * Only these of the topic's functions, when the source addresses some rather than all (a cron
   * schedule is one function's; a webhook verified for the functions it was signed for). A
   * function named here that no longer takes the topic is not called.
   */
  functions?: readonly string[];
  /**
   * Where the source takes an answer back (a NATS request's reply subject, an MQTT 5 response
   * topic): the controller's reply publisher hands it each function's answer to a synchronous
   * call, with a signal that aborts past the publisher's deadline. Absent when the source has no
   * such thing.
   */
  reply?: (answer: SourceReply, signal: AbortSignal) => Promise<void>;
  /**
   * False when the source handles a delivery that failed for good itself (a Kafka batch, whose
   * records are then delivered one by one): not kept as a dead letter. Default true.
   */
  deadLetterOnFailure?: boolean;
}

/** A function's answer, sent back through the source. */
export interface SourceReply {
  function: string;
  status: number;
  headers: Record<string, string | string[]>;
  body: Uint8Array;
}

/**
 * A connector's event source. It owns its client (broker connection, scheduler, HTTP listener)
 * and nothing else; which functions get an event, and how they are called, is decided by
 * whoever passes `emit`.
 *
 * Delivery is at least once: `emit` resolves once every matched function has answered, and only
 * then does the source acknowledge or commit the message. If `emit` rejects, the source must not
 * acknowledge; it redelivers as its backend allows (Kafka seeks back, MQTT QoS 1 redelivers on
 * reconnect). A source without acknowledgement (cron) just goes on.
 */
export interface Source<Delivered = unknown> {
  /**
   * Runs until `signal` aborts, then closes its client and resolves (at once when `signal` has
   * aborted already: a connector stopped before its first topic map still releases what its
   * source holds). Rejects only on a failure it cannot recover from (bad configuration, broker
   * refused the credentials). `emit` rejects while the connector cannot deliver (no topic map
   * built yet, a function that did not take the event): the source does not acknowledge then.
   * What it resolves with is the runtime's account of the delivery (the functions' answers); a
   * source that only acknowledges ignores it.
   */
  start(emit: (event: SourceEvent) => Promise<Delivered>, signal: AbortSignal): Promise<void>;
}
