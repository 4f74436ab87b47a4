'use strict';

// An Alexa skill. skill: { type, intent: { name, slots }, session: { id, new, attributes },
// locale, applicationId, userId, raw }; context.reply(): speak(), reprompt(), card(),
// attributes(), keepOpen(). The request was verified as Amazon's before this runs.
module.exports = async (skill, context) => {
  const reply = context.reply();
  if (skill.type === 'LaunchRequest') {
    return reply.speak('Welcome. Say hello to me.').reprompt('Say hello.').keepOpen();
  }
  if (skill.type === 'IntentRequest' && skill.intent.name === 'HelloIntent') {
    const name = skill.intent.slots.name ?? 'there';
    const count = (skill.session.attributes.count ?? 0) + 1;
    return reply
      .speak(`Hello, ${name}.`)
      .card('Hello', `Said hello to ${name}`)
      .attributes({ count });
  }
  // SessionEndedRequest, and intents this skill does not know: nothing to say.
  return reply;
};
