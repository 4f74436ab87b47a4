// The answer of an Alexa skill, built in small steps and sent as Alexa's response JSON:
// https://developer.amazon.com/en-US/docs/alexa/custom-skills/request-and-response-json-reference.html

/** Text that starts with <speak> is SSML; anything else is plain text. */
function speech(text) {
  const value = String(text);
  return value.trimStart().startsWith('<speak>')
    ? { type: 'SSML', ssml: value }
    : { type: 'PlainText', text: value };
}

export class Reply {
  #speech;
  #reprompt;
  #card;
  #attributes;
  #endSession;

  /** Says `text` (plain, or SSML in <speak>…</speak>). */
  speak(text) {
    this.#speech = speech(text);
    return this;
  }

  /** Says `text` when the user says nothing; keeps the session open. */
  reprompt(text) {
    this.#reprompt = speech(text);
    if (this.#endSession === undefined) this.#endSession = false;
    return this;
  }

  /** A card in the Alexa app: `card(title, text)`, with `image: {smallImageUrl, largeImageUrl}`. */
  card(title, text, image) {
    this.#card = image
      ? { type: 'Standard', title: String(title), text: String(text), image }
      : { type: 'Simple', title: String(title), content: String(text) };
    return this;
  }

  /** Session attributes, given back in the session's next request. */
  attributes(values) {
    this.#attributes = { ...values };
    return this;
  }

  /** Keeps the session open (the skill waits for the user), or ends it (the default). */
  keepOpen(open = true) {
    this.#endSession = !open;
    return this;
  }

  toJSON() {
    const response = { shouldEndSession: this.#endSession ?? true };
    if (this.#speech) response.outputSpeech = this.#speech;
    if (this.#reprompt) response.reprompt = { outputSpeech: this.#reprompt };
    if (this.#card) response.card = this.#card;
    return {
      version: '1.0',
      ...(this.#attributes ? { sessionAttributes: this.#attributes } : {}),
      response,
    };
  }
}
