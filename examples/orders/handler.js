'use strict';

// Invoked for every event on the `orders` and `payments` topics once a connector runs (see the
// `topic` annotation in stack.yml); callable directly too. Answers with what it received.
module.exports = async (event, context) => {
  const topic = event.headers['x-topic'] ?? 'direct call';
  return context.status(200).succeed({ topic, received: event.body });
};
