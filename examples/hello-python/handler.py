"""An fnbus function: handle(event, context) returns str, bytes, or a dict/list (sent as JSON).

event: .body (parsed JSON for JSON requests, else str), .headers, .method, .query, .path
context: .status(201) and .headers({"X-Name": "value"}) set and chain; without arguments they read.
"""


def handle(event, context):
    return {"status": "Received input: " + str(event.body)}
