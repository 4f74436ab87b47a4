/**
 * Names OpenFaaS fixed on the wire, kept verbatim so OpenFaaS functions, clients and connectors
 * work unchanged. Header names are written as OpenFaaS writes them; node lowercases the headers
 * of incoming requests, so look them up with `.toLowerCase()`.
 */
export const OpenFaasHeader = {
  /** A UUID per call, added by the gateway if absent and echoed on the response. */
  CallId: 'X-Call-Id',
  /** When the gateway received the call, in Unix nanoseconds. */
  StartTime: 'X-Start-Time',
  /** How long the function ran, in seconds (`%f`); set by watchdogs and on callbacks. */
  DurationSeconds: 'X-Duration-Seconds',
  /** Marks an answer made by fnbus rather than the function; see OpenFaasInternal for values. */
  Internal: 'X-OpenFaaS-Internal',
  /** Where an async call's answer is POSTed. */
  CallbackUrl: 'X-Callback-Url',
  /** On a callback: the function's status (503 if the call itself failed). */
  FunctionStatus: 'X-Function-Status',
  /** On a callback: the function that answered. */
  FunctionName: 'X-Function-Name',
  /** On a call from a connector: the topic the event came from. */
  Topic: 'X-Topic',
  /** On a call from a connector: which connector sent it. */
  Connector: 'X-Connector',
  /** A per-call time limit for the function, as a duration. */
  Timeout: 'X-Timeout',
  /** The component that answered, e.g. `openfaas-ce/<version>`. */
  ServedBy: 'X-Served-By',
  /** On a callback: how many times the call was retried, and the most retries allowed. */
  Retry: 'X-Retry',
  RetryMax: 'X-Retry-Max',
} as const;

export type OpenFaasHeader = (typeof OpenFaasHeader)[keyof typeof OpenFaasHeader];

/** Values of `X-OpenFaaS-Internal`: the component that made the answer. */
export const OpenFaasInternal = {
  Proxy: 'proxy',
  Watchdog: 'of-watchdog',
  Middleware: 'faas-middleware',
} as const;

/**
 * Annotation (and label) keys with a meaning. OpenFaaS reads the `com.openfaas.scale.*` keys from
 * labels, while the stack file and newer tools put them in annotations; read both.
 */
export const OpenFaasAnnotation = {
  /** The topics a function subscribes to (exact match). */
  Topic: 'topic',
  /** A cron expression, for functions whose topic is CronTopic. */
  Schedule: 'schedule',
  ScaleMin: 'com.openfaas.scale.min',
  ScaleMax: 'com.openfaas.scale.max',
  /** Percent of max added per scale-up step. */
  ScaleFactor: 'com.openfaas.scale.factor',
  /** `true`: scale to zero when idle. */
  ScaleZero: 'com.openfaas.scale.zero',
  /** How long idle before scaling to zero, as a duration. */
  ScaleZeroDuration: 'com.openfaas.scale.zero-duration',
  /** What the autoscaler measures: rps, capacity, cpu, queue. */
  ScaleType: 'com.openfaas.scale.type',
  /** The target per replica of that measure. */
  ScaleTarget: 'com.openfaas.scale.target',
  ScaleTargetProportion: 'com.openfaas.scale.target-proportion',
  /** The named queue for the function's async calls. */
  Queue: 'com.openfaas.queue',
  RetryAttempts: 'com.openfaas.retry.attempts',
  /** Comma-separated statuses to retry, e.g. `429,502,503`. */
  RetryCodes: 'com.openfaas.retry.codes',
  RetryMinWait: 'com.openfaas.retry.min_wait',
  RetryMaxWait: 'com.openfaas.retry.max_wait',
} as const;

export type OpenFaasAnnotation = (typeof OpenFaasAnnotation)[keyof typeof OpenFaasAnnotation];

/** The `topic` value that hands a function to the cron connector. */
export const CronTopic = 'cron-function';

/** The `X-Connector` value OpenFaaS's connector-sdk sends. */
export const ConnectorSdkName = 'connector-sdk';

/** The `X-Connector` value OpenFaaS's cron-connector sends. */
export const CronConnectorName = 'cron-connector';

/** An `X-Start-Time` value for now: nanoseconds since the epoch, as OpenFaaS's gateway sends. */
export function startTimeNow(): string {
  // Milliseconds and six zeros: the same digits as ms × 10⁶, without a BigInt a call.
  return `${Date.now()}000000`;
}
