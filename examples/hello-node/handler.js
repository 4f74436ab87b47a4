'use strict';

// An fnbus function. event: { body, headers, method, query, path }; context: status(), headers(),
// succeed(), fail(). Return a string, a Buffer, or an object/array (sent as JSON).
module.exports = async (event, context) => {
  const result = {
    status: 'Received input: ' + JSON.stringify(event.body),
  };

  return context.status(200).succeed(result);
};
