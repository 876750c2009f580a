"""``TestClient``: drive a ``Server`` in memory, HTTP and TCP, with no ports.

HTTP goes through the app's production ``Site`` and channel (``http.py``),
so tests exercise the same guards and fast path users run; TCP goes through
the production line protocol over an in-memory transport (``tcp.py``).
"""

from __future__ import annotations

import json as _json
from typing import Any, Dict, List, Optional, Tuple, Union
from urllib.parse import urlencode

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from ..adapters import http_factory
from ..app import Server
from .http import InMemoryHTTP, TestResponse, build_request
from .jobs import SyncJobs
from .tcp import TCPTestConnection

__all__ = ["TestClient"]


class TestClient:
    """Drive a ``Server`` in memory.

    ``jobs="sync"`` (default) runs background jobs as soon as the response
    is written; ``jobs="capture"`` keeps them in ``client.jobs.captured``
    until ``client.jobs.run_all()``; ``jobs="real"`` leaves the server's
    thread pool in charge. ``http_engine`` picks the HTTP engine (default:
    the server's ``config.http_engine``).
    """

    __test__ = False

    def __init__(self, server: Server, jobs: str = "sync", reactor: Any = None,
                 http_engine: Optional[str] = None) -> None:
        self.server = server
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self._reactor = reactor
        self.jobs: Optional[SyncJobs] = None if jobs == "real" else SyncJobs(server.jobs, jobs)
        # the production Site, with its connection timers on a clock of its own:
        # an in-memory connection must not leave calls in the test's reactor
        self._http = InMemoryHTTP(http_factory(server.adapter_context, reactor=Clock(),
                                               engine=http_engine), reactor)
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
        target = path
        if params:
            target += ("&" if "?" in path else "?") + urlencode(params, doseq=True)
        pairs: List[Tuple[str, str]] = []
        for name, value in (headers or {}).items():
            values = [value] if isinstance(value, (str, bytes)) else list(value)
            pairs.extend((name, v.decode("latin-1") if isinstance(v, bytes) else str(v))
                         for v in values)
        named = {name.lower() for name, _ in pairs}
        body: Optional[bytes] = None
        if json is not None:
            body = _json.dumps(json).encode("utf-8")
            if "content-type" not in named:
                pairs.append(("Content-Type", "application/json"))
        elif isinstance(data, dict):
            body = urlencode(data, doseq=True).encode()
            if "content-type" not in named:
                pairs.append(("Content-Type", "application/x-www-form-urlencoded"))
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        method = method.upper()
        return self._http.request(build_request(method, target, pairs, body),
                                  head_request=method == "HEAD")

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

    def connect(self, host: str = "127.0.0.1", port: Optional[int] = None) -> TCPTestConnection:
        """Open an in-memory TCP connection to the server's line protocol."""
        if port is None:
            self._next_port += 1
            port = self._next_port
        return TCPTestConnection(self._factory, host, port)
