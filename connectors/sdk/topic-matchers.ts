/**
 * Whether a function's `topic` annotation (`pattern`) takes an event's topic. Exact equality is
 * every connector's rule, as in OpenFaaS's connector-sdk; a source with a wildcard syntax of its
 * own adds it, so that a function can name `sensors/+/temperature` and get every sensor's events.
 */
export type TopicMatcher = (pattern: string, topic: string) => boolean;

export const exactTopics: TopicMatcher = (pattern, topic) => pattern === topic;

/**
 * MQTT filters: `+` is one level, `#` (last) is any number of levels, itself included
 * (`a/#` takes `a`). Topics starting with `$` are only taken by patterns that name the `$` level.
 * A shared subscription `$share/<group>/<filter>` takes what its filter takes: the group only
 * says which subscribers split the messages.
 */
export const mqttTopics: TopicMatcher = (pattern, topic) => {
  if (pattern === topic) return true;
  const shared = /^\$share\/[^/]+\/(.+)$/.exec(pattern);
  if (shared) return mqttTopics(shared[1] as string, topic);
  const want = pattern.split('/');
  const have = topic.split('/');
  if (topic.startsWith('$') && (want[0] === '+' || want[0] === '#')) return false;
  for (let i = 0; i < want.length; i++) {
    const part = want[i];
    if (part === '#') return i === want.length - 1;
    if (i >= have.length) return false;
    if (part !== '+' && part !== have[i]) return false;
  }
  return want.length === have.length;
};

/** NATS subjects: `*` is one token, `>` (last) one or more tokens. */
export const natsTopics: TopicMatcher = (pattern, topic) => {
  if (pattern === topic) return true;
  const want = pattern.split('.');
  const have = topic.split('.');
  for (let i = 0; i < want.length; i++) {
    const part = want[i];
    if (part === '>') return i === want.length - 1 && have.length > i;
    if (i >= have.length) return false;
    if (part !== '*' && part !== have[i]) return false;
  }
  return want.length === have.length;
};
