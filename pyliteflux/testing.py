"""Helpers for testing pyliteflux apps with trial or pytest-twisted.

- ``TestClient(server)``: drive HTTP routes in memory (``treq.testing.StubTreq``
  over the server's resource) and TCP commands over an in-memory transport,
  with no ports. Background jobs run synchronously, or are captured for the
  test to run when it chooses.
- ``serve(server)``: run the server on free loopback ports for end-to-end
  tests; the returned object's ``stop()`` tears it down cleanly.
- ``load_app("module:attribute")``: import a module that ends in
  ``server.run()`` (like the seed's examples) without blocking, with its
  routes kept out of the process-wide default router.

Every method that waits returns a Deferred: return or ``yield`` it from a
trial test, or ``await``/``pytest_twisted.ensureDeferred`` it under pytest.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import urlencode

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from .background import JobRunner
from .codec import DecodeError, loads_json, parse_xml, xml_to_data
from .context import new_context
from .routing import Route
from .server import Listening, Server, importing_app

__all__ = ["TestClient", "TestResponse", "TCPTestConnection", "serve", "RunningServer",
           "load_app", "SyncJobs"]


# -- background jobs ------------------------------------------------------------------


class SyncJobs:
    """Replaces a server's job submission: run jobs at once, or capture them.

    ``mode="sync"`` runs each job as soon as it is submitted (after the
    response is written), each in a fresh ``g``; ``mode="capture"`` keeps
    them in ``captured`` until ``run_all()``.
    """

    def __init__(self, runner: JobRunner, mode: str = "sync") -> None:
        if mode not in ("sync", "capture"):
            raise ValueError("mode is 'sync' or 'capture'")
        self.mode = mode
        self.captured: List[Tuple[Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]] = []
        self.results: List[Deferred[Any]] = []
        self._runner = runner
        runner.submit = self._submit  # type: ignore[method-assign]

    def _submit(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        if self.mode == "capture":
            self.captured.append((func, args, kwargs))
            return succeed(None)
        return self._run(func, args, kwargs)

    def _run(self, func: Callable[..., Any], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Deferred[Any]:
        ctx = new_context()
        stats = self._runner.stats
        stats.running += 1
        try:
            result = ctx.run(func, *args, **kwargs)
            if hasattr(result, "__await__"):
                d: Deferred[Any] = ctx.run(Deferred.fromCoroutine, result)
            else:
                d = succeed(result)
        except BaseException as exc:
            d = Deferred()
            d.errback(exc)

        def done(result: Any) -> Any:
            stats.running -= 1
            stats.done += 1
            return result

        def failed(failure: Any) -> Any:
            stats.running -= 1
            stats.failed += 1
            return failure

        d.addCallbacks(done, failed)
        self.results.append(d)
        return d

    def run_all(self) -> Deferred[List[Any]]:
        """Run the captured jobs now, in order; fires with their results."""
        jobs, self.captured = self.captured, []
        out: List[Any] = []
        chain: Deferred[Any] = succeed(None)
        for func, args, kwargs in jobs:
            chain.addCallback(lambda _, f=func, a=args, k=kwargs: self._run(f, a, k))  # type: ignore[call-overload]
            chain.addCallback(out.append)
        return chain.addCallback(lambda _: out)


# -- HTTP -------------------------------------------------------------------------------


class TestResponse:
    """A finished HTTP response: ``code``, ``headers``, ``body``, ``json()``, ``text()``."""

    __test__ = False  # not a pytest test class

    def __init__(self, code: int, headers: Any, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        """The last value of a response header, or None."""
        values = self.headers.getRawHeaders(name)
        return values[-1] if values else None

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<TestResponse {self.code} {self.body[:60]!r}>"


class _Flushing(Resource):
    """Wraps the app's resource so responses finished later reach the client."""

    isLeaf = True

    def __init__(self, inner: Resource, flush: Callable[[], None], reactor: Any) -> None:
        super().__init__()
        self._inner = inner
        self._flush = flush
        self._reactor = reactor

    def render(self, request: Any) -> Any:
        result = self._inner.render(request)
        if result is NOT_DONE_YET:
            request.notifyFinish().addBoth(lambda _: self._reactor.callLater(0, self._flush))
        return result


class TestClient:
    """Drive a ``Server`` in memory: HTTP through StubTreq, TCP through a fake transport.

    ``jobs="sync"`` (default) runs background jobs as soon as the response
    is written; ``jobs="capture"`` keeps them in ``client.jobs.captured``
    until ``client.jobs.run_all()``; ``jobs="real"`` leaves the server's
    thread pool in charge.
    """

    __test__ = False

    def __init__(self, server: Server, jobs: str = "sync", reactor: Any = None) -> None:
        from treq.testing import StubTreq

        self.server = server
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor = reactor
        self.jobs: Optional[SyncJobs] = None if jobs == "real" else SyncJobs(server.jobs, jobs)
        self._stub: Any = None
        self._stub = StubTreq(_Flushing(server.resource, lambda: self._stub.flush(), reactor))
        # as in our Site: pyliteflux parses forms itself (lazily, JSON errors);
        # Twisted's eager parse would answer a bad multipart body with a bare 400
        site = getattr(getattr(self._stub, "_agent", None), "_serverFactory", None)
        if site is not None:
            site._parsePOSTFormSubmission = False
        self._factory = server.tcp_factory()
        self._next_port = 50000

    # HTTP

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Dict[str, Any]] = None,
        headers: Optional[Dict[str, Any]] = None,
        json: Any = None,
        data: Union[bytes, str, Dict[str, Any], None] = None,
    ) -> Deferred[TestResponse]:
        """Send one request; fires with a ``TestResponse`` when it is complete."""
        import treq

        url = "http://testserver" + path
        if params:
            url += ("&" if "?" in path else "?") + urlencode(params, doseq=True)
        hdrs = {k: [v] if isinstance(v, (str, bytes)) else v for k, v in (headers or {}).items()}
        body: Any = None
        if json is not None:
            body = _json_bytes(json)
            hdrs.setdefault("Content-Type", ["application/json"])
        elif isinstance(data, dict):
            body = urlencode(data, doseq=True).encode()
            hdrs.setdefault("Content-Type", ["application/x-www-form-urlencoded"])
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        d = self._stub.request(method.upper(), url, headers=hdrs or None, data=body)

        def read(response: Any) -> Deferred[TestResponse]:
            return treq.content(response).addCallback(
                lambda content: TestResponse(response.code, response.headers, content))

        d.addCallback(read)
        self._stub.flush()
        return d

    def get(self, path: str, **kw: Any) -> Deferred[TestResponse]:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Deferred[TestResponse]:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Deferred[TestResponse]:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Deferred[TestResponse]:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Deferred[TestResponse]:
        return self.request("DELETE", path, **kw)

    def head(self, path: str, **kw: Any) -> Deferred[TestResponse]:
        return self.request("HEAD", path, **kw)

    def options(self, path: str, **kw: Any) -> Deferred[TestResponse]:
        return self.request("OPTIONS", path, **kw)

    # TCP

    def connect(self, host: str = "127.0.0.1", port: Optional[int] = None) -> "TCPTestConnection":
        """Open an in-memory TCP connection to the server's line protocol."""
        if port is None:
            self._next_port += 1
            port = self._next_port
        return TCPTestConnection(self._factory, host, port)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


class _NotifyingTransport(StringTransport):
    """A StringTransport that tells the connection about writes and closes."""

    def __init__(self, conn: "TCPTestConnection", peer: IPv4Address) -> None:
        super().__init__(peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8001))
        self._conn = conn

    def write(self, data: bytes) -> None:
        super().write(data)
        self._conn._on_output()

    def writeSequence(self, seq: Any) -> None:
        super().write(b"".join(seq))
        self._conn._on_output()

    def loseConnection(self) -> None:
        super().loseConnection()
        self._conn._lost()

    def abortConnection(self) -> None:
        self.loseConnection()


class TCPTestConnection:
    """One in-memory TCP client.

    ``send(obj)`` takes a dict (sent as JSON), an XML string or a raw line and
    fires with the reply to it. ``replies`` and ``pushes`` collect everything
    the server sent (parsed when JSON or XML), in order.
    """

    __test__ = False

    def __init__(self, factory: Any, host: str, port: int) -> None:
        self.client_id = f"{host}:{port}"
        self.protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        self.transport = _NotifyingTransport(self, IPv4Address("TCP", host, port))
        self.replies: List[Any] = []
        self.pushes: List[Any] = []
        self.lines: List[bytes] = []
        self.closed = False
        self._consumed = 0
        self._waiting: List[Deferred[Any]] = []
        self._sent = 0
        self.protocol.makeConnection(self.transport)

    def send(self, message: Union[Dict[str, Any], str, bytes]) -> Deferred[Any]:
        """Send one request line; fires with its (parsed) reply."""
        if isinstance(message, dict):
            line = _json_bytes(message)
        elif isinstance(message, str):
            line = message.encode("utf-8")
        else:
            line = message
        if not line.endswith(b"\n"):
            line += b"\n"
        d: Deferred[Any] = Deferred()
        if self.closed:
            from twisted.internet.error import ConnectionDone

            d.errback(ConnectionDone("the server closed this connection"))
            return d
        self._waiting.append(d)
        self.send_bytes(line)
        return d

    def send_bytes(self, data: bytes) -> None:
        """Deliver raw bytes to the server (no framing added)."""
        if not self.closed:
            self.protocol.dataReceived(data)

    def _on_output(self) -> None:
        data = self.transport.value()
        end = data.rfind(b"\n")
        if end < self._consumed:
            return
        chunk = data[self._consumed:end]
        self._consumed = end + 1
        for line in chunk.split(b"\n"):
            self.lines.append(line)
            parsed = _parse_reply(line)
            if _is_push(parsed, line):
                self.pushes.append(parsed)
            else:
                self.replies.append(parsed)
                if self._waiting:
                    self._waiting.pop(0).callback(parsed)

    def _lost(self) -> None:
        if not self.closed:
            self.closed = True
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                from twisted.internet.error import ConnectionDone

                d.errback(ConnectionDone("closed before a reply"))
            from twisted.internet.error import ConnectionDone
            from twisted.python.failure import Failure

            self.protocol.connectionLost(Failure(ConnectionDone()))

    def close(self) -> None:
        """Close the connection from the client side."""
        self._lost()


def _parse_reply(line: bytes) -> Any:
    head = line[:1]
    try:
        if head != b"<":
            return loads_json(line)
    except DecodeError:
        return line.decode("utf-8", "replace")
    try:
        if head == b"<":
            element = parse_xml(line)
            data = xml_to_data(element)
            return {"tag": element.tag, "attrib": dict(element.attrib), "data": data}
    except DecodeError:
        pass
    return line.decode("utf-8", "replace")


def _is_push(parsed: Any, line: bytes) -> bool:
    if isinstance(parsed, dict):
        return parsed.get("type") == "push" or parsed.get("tag") == "push"
    return False


# -- loopback -----------------------------------------------------------------------------


class RunningServer:
    """A server listening on loopback: ``http_port``, ``tcp_port``, ``url(path)``, ``stop()``."""

    def __init__(self, server: Server, listening: Listening) -> None:
        self.server = server
        self.listening = listening
        self.http_port = listening.http_port
        self.tcp_port = listening.tcp_port

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def stop(self) -> Deferred[Any]:
        """Stop listening, close connections, drain jobs; fires when done."""
        return self.server._stop_service()


def serve(server: Server, protocol: str = "both") -> Deferred[RunningServer]:
    """Listen on 127.0.0.1 with free ports (whatever the config says)."""
    server.config.update(http_host="127.0.0.1", http_port=0, tcp_host="127.0.0.1", tcp_port=0,
                         http_endpoint=None, tcp_endpoint=None)
    return server.listen(protocol).addCallback(lambda listening: RunningServer(server, listening))


def load_app(spec: str, fresh: bool = True) -> Server:
    """Import ``"package.module:attribute"`` and return its ``Server``.

    The import runs with ``Server.run()`` disabled and, with ``fresh``, with
    a fresh default router, so the module's ``Route.register`` calls go to
    its own server and two apps loaded in one test process never share
    routes. ``attribute`` may also name a function returning a ``Server``.
    """
    module_name, _, attr = spec.partition(":")
    attr = attr or "server"
    if fresh:
        sys.modules.pop(module_name, None)
    with importing_app():
        if fresh:
            with Route.isolated():
                module = importlib.import_module(module_name)
        else:
            module = importlib.import_module(module_name)
    target = getattr(module, attr)
    if not isinstance(target, Server) and callable(target):
        target = target()
    if not isinstance(target, Server):
        raise TypeError(f"{spec} is not a pyliteflux Server")
    return target
