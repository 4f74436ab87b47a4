"""fnbus python3 template: the runner.

A standard-library HTTP server that the watchdog starts in `http` mode and proxies every call to.
It loads the handler once, at start, and calls `handle(event, context)` per request. See
../README.md for the contract.
"""

import importlib.util
import json
import os
import re
import signal
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def parse_size(value, default):
    """Byte sizes as the node template reads them: 100kb, 1mb, or a bare number of bytes."""
    if not value:
        return default
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*", value, re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {value!r} (use e.g. 100kb, 1mb)")
    return int(float(match.group(1)) * UNITS[(match.group(2) or "b").lower()])


def listen_port(env):
    """PORT; else the port of the watchdog's upstream_url (its environment is ours); else 3000."""
    if env.get("PORT"):
        return int(env["PORT"])
    upstream = env.get("http_upstream_url") or env.get("upstream_url")
    if upstream:
        try:
            port = urlsplit(upstream).port
            if port:
                return port
        except ValueError:
            pass
    return 3000


def load_handler(env):
    """`handle` from handler.py in `handler_path` (a folder or the file), else function/ here."""
    base = os.path.abspath(env.get("handler_path") or os.path.join(HERE, "function"))
    path = base if os.path.isfile(base) else os.path.join(base, "handler.py")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no handler.py in {base}")
    folder = os.path.dirname(path)
    # The handler's own modules, and the dependencies installed beside it (see ../install.sh).
    sys.path.insert(0, folder)
    packages = os.path.join(folder, ".python_packages")
    if os.path.isdir(packages):
        sys.path.insert(0, packages)
    spec = importlib.util.spec_from_file_location("handler", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["handler"] = module
    spec.loader.exec_module(module)
    handle = getattr(module, "handle", None)
    if not callable(handle):
        raise TypeError(f"{path} defines no handle(event, context)")
    return path, handle


def to_dict(pairs):
    """name -> value, or a list of values for a repeated name (as the node template)."""
    out = {}
    for key, value in pairs:
        if key not in out:
            out[key] = value
        elif isinstance(out[key], list):
            out[key].append(value)
        else:
            out[key] = [out[key], value]
    return out


class Event:
    """What the handler gets: body, headers (lower-case names), method, query, path."""

    def __init__(self, body, headers, method, query, path):
        self.body = body
        self.headers = headers
        self.method = method
        self.query = query
        self.path = path

    def __repr__(self):
        return f"Event(method={self.method!r}, path={self.path!r})"


def secrets_dir(env=None):
    """Where the function's secrets are, one file per secret: FNBUS_SECRETS_PATH where the host
    sets it (the process provider: a folder of the function's own), else OpenFaaS's mount point."""
    env = os.environ if env is None else env
    return env.get("FNBUS_SECRETS_PATH") or "/var/openfaas/secrets"


def read_secret(name, env=None):
    """A secret's value as a string (UTF-8, as stored: a trailing newline is kept)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"not a secret name: {name!r}")
    try:
        with open(os.path.join(secrets_dir(env), name), encoding="utf-8") as file:
            return file.read()
    except FileNotFoundError:
        raise KeyError(f"no secret {name!r}: list it in the function's secrets") from None


class Context:
    """status(n) and headers({...}) set and chain; without an argument they read. secret(name)
    reads one of the function's secrets."""

    def __init__(self):
        self.status_code = 200
        self.header_values = {}

    def status(self, code=None):
        if code is None:
            return self.status_code
        self.status_code = int(code)
        return self

    def headers(self, values=None):
        if values is None:
            return self.header_values
        self.header_values = dict(values)
        return self

    def secret(self, name):
        return read_secret(name)


def encode(value):
    """A result as bytes and its default Content-Type: dicts and lists as JSON."""
    if value is None:
        return b"", None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), "application/octet-stream"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value).encode(), "application/json"
    return str(value).encode(), "text/plain; charset=utf-8"


def make_server(env):
    path, handle = load_handler(env)
    raw = env.get("RAW_BODY") == "true"
    raw_limit = parse_size(env.get("MAX_RAW_SIZE"), 100 * 1024)
    json_limit = parse_size(env.get("MAX_JSON_SIZE"), 100 * 1024)
    state = {"inflight": 0, "draining": False}
    idle = threading.Condition()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per response (head and body together) and no Nagle delay: without these a
        # keep-alive caller waits ~40ms on delayed ACKs for every call.
        wbufsize = 64 * 1024
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):
            pass  # the watchdog logs calls

        def read_body(self, limit):
            """The body, or HttpError(413) past `limit` bytes. A body too large is still read
            (and dropped): closing the connection under a caller still sending it (the watchdog)
            would make it see a reset rather than the 413."""
            chunks, size = [], 0

            def take(length):
                nonlocal size
                while length > 0:
                    data = self.rfile.read(min(length, 64 * 1024))
                    if not data:
                        raise HttpError(400, "request body cut short")
                    length -= len(data)
                    size += len(data)
                    if size <= limit:
                        chunks.append(data)

            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                while True:
                    line = self.rfile.readline(65537)
                    length = int(line.split(b";")[0].strip() or b"0", 16)
                    if length == 0:
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        break
                    take(length)
                    self.rfile.readline(3)
            else:
                take(int(self.headers.get("Content-Length") or 0))
            if size > limit:
                raise HttpError(413, f"request body larger than {limit} bytes")
            return b"".join(chunks)

        def event(self):
            url = urlsplit(self.path)
            ctype = self.headers.get("Content-Type") or ""
            if raw:
                body = self.read_body(raw_limit)
            elif re.match(r"application/([\w.+-]*\+)?json\b", ctype, re.IGNORECASE):
                text = self.read_body(json_limit).decode("utf-8")
                try:
                    body = json.loads(text) if text else None
                except ValueError as error:
                    raise HttpError(400, f"invalid JSON body: {error}") from error
            else:
                text = self.read_body(raw_limit).decode("utf-8", errors="replace")
                if ctype.lower().startswith("application/x-www-form-urlencoded"):
                    body = to_dict(parse_qsl(text, keep_blank_values=True))
                else:
                    body = text
            headers = {name.lower(): value for name, value in self.headers.items()}
            query = to_dict(parse_qsl(url.query, keep_blank_values=True))
            return Event(body, headers, self.command, query, url.path)

        def send(self, status, headers, body, content_type):
            self.send_response(status)
            names = {name.lower() for name in headers}
            for name, value in headers.items():
                self.send_header(name, str(value))
            if content_type and body and "content-type" not in names:
                self.send_header("Content-Type", content_type)
            if state["draining"]:
                self.send_header("Connection", "close")
                self.close_connection = True
            if status not in (204, 304):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status not in (204, 304) and self.command != "HEAD":
                self.wfile.write(body)

        def answer(self):
            with idle:
                state["inflight"] += 1
            try:
                self.call()
            finally:
                with idle:
                    state["inflight"] -= 1
                    idle.notify_all()

        def call(self):
            try:
                event = self.event()
            except HttpError as error:
                self.send(error.status, {}, str(error).encode(), "text/plain; charset=utf-8")
                return
            context = Context()
            try:
                result = handle(event, context)
                body, content_type = encode(result)
                status, headers = context.status(), context.headers()
            except Exception as error:  # noqa: BLE001 - the function's failure is an answer
                traceback.print_exc(file=sys.stderr)
                # A success status never carries an error.
                status = context.status() if context.status() >= 400 else 500
                body = str(error).encode()
                headers, content_type = {}, "text/plain; charset=utf-8"
            self.send(status, headers, body, content_type)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = answer

    host = env.get("HOST") or "127.0.0.1"
    server = ThreadingHTTPServer((host, listen_port(env)), Handler)
    server.daemon_threads = True

    def stop():
        """Stop accepting; calls in flight finish (idle keep-alive threads die with us)."""
        state["draining"] = True
        server.shutdown()
        with idle:
            idle.wait_for(lambda: state["inflight"] == 0)

    return path, server, stop


def main():
    path, server, stop = make_server(os.environ)
    host, port = server.server_address[:2]
    print(f"fnbus python3 template: {os.path.basename(path)} listening on http://{host}:{port}", flush=True)
    stopper = []

    def on_signal(_signum, _frame):
        if not stopper:
            # stop() waits for serve_forever(), which runs on this (the main) thread.
            stopper.append(threading.Thread(target=stop))
            stopper[0].start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # How long a SIGTERM may wait for the accept loop to notice.
    server.serve_forever(poll_interval=0.1)
    stopper[0].join()
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
