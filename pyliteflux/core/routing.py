"""The router shared by HTTP and TCP.

Routes are compiled once, at registration. Static HTTP paths and TCP
commands are dict lookups; only parameterised paths reach a regex. A lookup
is a full match, a path match with the wrong method (405), or nothing (404).

``Route.register`` writes into the process-wide *default* router that the
seed's examples use; ``Router()`` makes an independent one for a server or a
test. A ``Server()`` binds to whatever router is the default when it is
constructed, so ``Route.isolated()`` can give each test its own.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Pattern, Tuple, Union

from twisted.logger import Logger

from .errors import MethodNotAllowed, NotFound

__all__ = ["Route", "Router", "RouteEntry", "Match", "HTTP_METHODS", "PROTOCOLS", "UNMATCHED"]

HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
PROTOCOLS = ("http", "tcp", "both")

Handler = Callable[..., Any]

_log = Logger(namespace="pyliteflux.routing")


def _to_int(text: str) -> int:
    return int(text)


def _to_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return value


#: converter name -> (regex for one value, function turning the text into the value)
_CONVERTERS: Dict[str, Tuple[str, Optional[Callable[[str], Any]]]] = {
    "str": (r"[^/]+", None),
    "int": (r"[0-9]+", _to_int),
    "float": (r"[0-9]+(?:\.[0-9]+)?", _to_float),
    "path": (r".*", None),
}

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")


@dataclass
class RouteEntry:
    """A registered handler: where, for which methods, and the compiled pattern."""

    path: str
    handler: Handler
    methods: Tuple[str, ...]
    protocol: str
    regex: Optional[Pattern[str]] = None
    converters: Dict[str, Callable[[str], Any]] = field(default_factory=dict)


#: the ``route`` of a request no registered pattern matched (a bounded metric label)
UNMATCHED = "<unmatched>"


class Match:
    """The result of a successful lookup. ``route`` is the registered pattern
    that matched (``/user/{id}``), never the raw path."""

    __slots__ = ("handler", "path_params", "entry", "route")

    def __init__(self, handler: Handler, path_params: Dict[str, Any],
                 entry: Optional[RouteEntry] = None, route: Optional[str] = None) -> None:
        self.handler = handler
        self.path_params = path_params
        self.entry = entry
        self.route = route if route is not None else (entry.path if entry else UNMATCHED)


def _compile(path: str) -> Tuple[Optional[Pattern[str]], Dict[str, Callable[[str], Any]]]:
    """Turn ``/user/{id:int}/files/*`` into a regex, or None for a static path."""
    if "{" not in path and "*" not in path:
        return None, {}
    converters: Dict[str, Callable[[str], Any]] = {}
    parts: List[str] = []
    pos = 0
    for m in _PARAM.finditer(path):
        parts.append(re.escape(path[pos:m.start()]))
        name, conv = m.group(1), m.group(2) or "str"
        if conv not in _CONVERTERS:
            raise ValueError(f"unknown converter {conv!r} in route {path!r}")
        if name in converters or f"(?P<{name}>" in "".join(parts):
            raise ValueError(f"parameter {name!r} appears twice in route {path!r}")
        pattern, func = _CONVERTERS[conv]
        parts.append(f"(?P<{name}>{pattern})")
        if func is not None:
            converters[name] = func
        pos = m.end()
    rest = path[pos:]
    if "{" in rest or "}" in rest:
        raise ValueError(f"malformed parameter in route {path!r}")
    if rest.endswith("*"):
        if "*" in rest[:-1]:
            raise ValueError(f"'*' may only end a route: {path!r}")
        parts.append(re.escape(rest[:-1]) + "(?P<__wildcard__>.*)")
    elif "*" in rest:
        raise ValueError(f"'*' may only end a route: {path!r}")
    else:
        parts.append(re.escape(rest))
    return re.compile("^" + "".join(parts) + "$"), converters


def _normalise_methods(method: Union[str, Iterable[str]]) -> Tuple[str, ...]:
    methods = (method,) if isinstance(method, str) else tuple(method)
    out = []
    for m in methods:
        if not isinstance(m, str) or m.upper() not in HTTP_METHODS:
            raise ValueError(f"unsupported HTTP method {m!r}; use one of {HTTP_METHODS}")
        out.append(m.upper())
    if not out:
        raise ValueError("at least one HTTP method is required")
    return tuple(dict.fromkeys(out))


def _options_handler(allowed: List[str]) -> Handler:
    """The automatic answer to OPTIONS on a path with no OPTIONS route."""
    from .responses import HTTPResponse

    def options(request: Any) -> HTTPResponse:
        return HTTPResponse(None, 204, {"Allow": ", ".join(allowed)})

    return options


def _literal_head(path: str) -> Optional[str]:
    """The first path segment if it is literal ("/user/{id}" -> "user"), else None."""
    i = path.find("/", 1)
    head = path[1:i] if i > 0 else path[1:]
    return None if ("{" in head or "*" in head) else head


class Router:
    """A route table for HTTP paths and TCP commands."""

    def __init__(self) -> None:
        self._static: Dict[str, Dict[str, RouteEntry]] = {}
        self._dynamic: List[RouteEntry] = []
        # dynamic routes indexed by their literal first segment ("/user/{id}" -> "user");
        # each list keeps registration order and includes the routes whose first
        # segment is itself dynamic (those alone are in _dynamic_any)
        self._dynamic_by_head: Dict[str, List[RouteEntry]] = {}
        self._dynamic_any: List[RouteEntry] = []
        self._commands: Dict[str, RouteEntry] = {}

    # -- registration -------------------------------------------------------

    def register(
        self,
        path: str,
        method: Union[str, Iterable[str]] = "GET",
        protocol: str = "http",
    ) -> Callable[[Handler], Handler]:
        """Decorator registering a handler for an HTTP path and/or a TCP command."""
        if not isinstance(path, str) or not path:
            raise ValueError(f"route path must be a non-empty string, got {path!r}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        methods = _normalise_methods(method)

        def decorator(handler: Handler) -> Handler:
            if not callable(handler):
                raise TypeError(f"route handler must be callable, got {handler!r}")
            if protocol in ("http", "both"):
                self.add_http(path if path.startswith("/") else "/" + path, handler, methods)
            if protocol in ("tcp", "both"):
                self.add_command(path.lstrip("/") if protocol == "both" else path, handler)
            return handler

        return decorator

    def add_http(self, path: str, handler: Handler, methods: Tuple[str, ...] = ("GET",)) -> RouteEntry:
        """Register ``handler`` for an HTTP path."""
        if not path.startswith("/"):
            raise ValueError(f"HTTP route paths start with '/': {path!r}")
        methods = _normalise_methods(methods)
        regex, converters = _compile(path)
        entry = RouteEntry(path, handler, methods, "http", regex, converters)
        if regex is None:
            table = self._static.setdefault(path, {})
            for m in methods:
                self._warn_replace(table.get(m), handler, f"{m} {path}")
                table[m] = entry
        else:
            for existing in list(self._dynamic):
                if existing.path == path:
                    overlap = set(existing.methods) & set(methods)
                    for m in overlap:
                        self._warn_replace(existing, handler, f"{m} {path}")
                    remaining = tuple(m for m in existing.methods if m not in overlap)
                    if remaining:
                        existing.methods = remaining
                    else:
                        self._dynamic.remove(existing)
            self._dynamic.append(entry)
            self._reindex()
        return entry

    def add_command(self, command: str, handler: Handler) -> RouteEntry:
        """Register ``handler`` for a TCP command name."""
        if not command or any(c.isspace() for c in command):
            raise ValueError(f"TCP command names are one word: {command!r}")
        entry = RouteEntry(command, handler, (), "tcp")
        self._warn_replace(self._commands.get(command), handler, f"TCP {command}")
        self._commands[command] = entry
        return entry

    @staticmethod
    def _warn_replace(old: Optional[RouteEntry], handler: Handler, what: str) -> None:
        if old is not None and old.handler is not handler:
            _log.warn("route {what} re-registered; the newer handler wins", what=what)

    # -- lookup -------------------------------------------------------------

    def match_http(self, method: str, path: str) -> Match:
        """Find the handler for ``method`` on ``path``.

        Raises ``NotFound`` or ``MethodNotAllowed`` (with the allowed methods).
        """
        table = self._static.get(path)
        if table is not None:
            entry = table.get(method)
            if entry is None and method == "HEAD":
                entry = table.get("GET")
            if entry is not None:
                return Match(entry.handler, {}, entry)
        return self._match_dynamic(method, path, table)

    def http_handler(self, method: str, path: str) -> Tuple[Handler, Dict[str, Any]]:
        """``(handler, path_params)``: what the pipeline needs, without a Match
        object for the common case of a static route."""
        table = self._static.get(path)
        if table is not None:
            entry = table.get(method) or (table.get("GET") if method == "HEAD" else None)
            if entry is not None:
                return entry.handler, {}
        match = self._match_dynamic(method, path, table)
        return match.handler, match.path_params

    def http_route(self, method: str, path: str) -> Tuple[Handler, Dict[str, Any], str]:
        """``(handler, path_params, pattern)``: ``http_handler`` plus the
        registered pattern that matched (a bounded label for metrics). A 405
        (``MethodNotAllowed``) carries the pattern as its ``route``."""
        table = self._static.get(path)
        if table is not None:
            entry = table.get(method) or (table.get("GET") if method == "HEAD" else None)
            if entry is not None:
                return entry.handler, {}, path
        match = self._match_dynamic(method, path, table)
        return match.handler, match.path_params, match.route

    def _match_dynamic(self, method: str, path: str,
                       table: Optional[Dict[str, RouteEntry]]) -> Match:
        if table is not None:
            allowed = set(table)
            route = path
        else:
            allowed = set()
            route = UNMATCHED
        i = path.find("/", 1)
        head = path[1:i] if i > 0 else path[1:]
        candidates = self._dynamic_by_head.get(head, self._dynamic_any)
        for entry in candidates:
            m = entry.regex.match(path)  # type: ignore[union-attr]
            if m is None:
                continue
            if method not in entry.methods and not (method == "HEAD" and "GET" in entry.methods):
                allowed.update(entry.methods)
                if route is UNMATCHED:
                    route = entry.path
                continue
            try:
                params = self._convert(entry, m)
            except ValueError:
                continue
            return Match(entry.handler, params, entry)
        if allowed:
            if "GET" in allowed:
                allowed.add("HEAD")
            allowed.add("OPTIONS")
            if method == "OPTIONS":
                return Match(_options_handler(sorted(allowed)), {}, route=route)
            not_allowed = MethodNotAllowed(sorted(allowed))
            not_allowed.route = route  # type: ignore[attr-defined]
            raise not_allowed
        raise NotFound()

    def _reindex(self) -> None:
        heads: Dict[str, List[RouteEntry]] = {}
        for entry in self._dynamic:
            head = _literal_head(entry.path)
            if head is not None:
                heads.setdefault(head, [])
        self._dynamic_by_head = {
            head: [e for e in self._dynamic if _literal_head(e.path) in (head, None)]
            for head in heads
        }
        self._dynamic_any = [e for e in self._dynamic if _literal_head(e.path) is None]

    def allowed_methods(self, path: str) -> List[str]:
        """Every method some route accepts on ``path`` (for OPTIONS and 405)."""
        allowed = set(self._static.get(path, ()))
        for entry in self._dynamic:
            m = entry.regex.match(path)  # type: ignore[union-attr]
            if m is not None:
                try:
                    self._convert(entry, m)
                except ValueError:
                    continue
                allowed.update(entry.methods)
        if allowed:
            if "GET" in allowed:
                allowed.add("HEAD")
            allowed.add("OPTIONS")
        return sorted(allowed)

    @staticmethod
    def _convert(entry: RouteEntry, m: "re.Match[str]") -> Dict[str, Any]:
        params: Dict[str, Any] = m.groupdict()
        if "__wildcard__" in params:
            params["*"] = params.pop("__wildcard__")
        for name, func in entry.converters.items():
            params[name] = func(params[name])
        return params

    def match_command(self, command: str) -> Match:
        """Find the handler for a TCP command; raises ``NotFound``."""
        entry = self._commands.get(command)
        if entry is None:
            raise NotFound()
        return Match(entry.handler, {}, entry)

    def has_command(self, command: str) -> bool:
        """Whether ``command`` is registered (unknown ones are one metric label)."""
        return command in self._commands

    def command_handler(self, command: str) -> Handler:
        """Just the handler for a TCP command (the pipeline's fast lookup)."""
        entry = self._commands.get(command)
        if entry is None:
            raise NotFound()
        return entry.handler

    # -- introspection --------------------------------------------------------

    def routes(self) -> Iterator[RouteEntry]:
        """Every registered route: static, then dynamic, then TCP commands."""
        seen = set()
        for table in self._static.values():
            for entry in table.values():
                if id(entry) not in seen:
                    seen.add(id(entry))
                    yield entry
        yield from self._dynamic
        yield from self._commands.values()

    def commands(self) -> List[str]:
        return sorted(self._commands)

    def __len__(self) -> int:
        return sum(1 for _ in self.routes())


class _RouteMeta(type):
    """Lets ``Route.default`` be read like a class attribute."""

    @property
    def default(cls) -> Router:
        return cls._default  # type: ignore[attr-defined, no-any-return]


class Route(metaclass=_RouteMeta):
    """The process-wide route registry the seed's examples use.

    ``@Route.register("/hello", method="GET")`` adds to ``Route.default``.
    """

    _default: Router = Router()

    @classmethod
    def register(
        cls,
        path: str,
        method: Union[str, Iterable[str]] = "GET",
        protocol: str = "http",
    ) -> Callable[[Handler], Handler]:
        """Register a handler on the current default router (see ``Router.register``)."""
        return cls._default.register(path, method=method, protocol=protocol)

    @classmethod
    @contextmanager
    def isolated(cls, router: Optional[Router] = None) -> Iterator[Router]:
        """Make a fresh router the default for the duration of the block.

        ``Route.register`` calls and ``Server()`` constructions inside the block
        use it, so importing an example app here does not leak its routes.
        """
        previous = cls._default
        cls._default = router if router is not None else Router()
        try:
            yield cls._default
        finally:
            cls._default = previous

