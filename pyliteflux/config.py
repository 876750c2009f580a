"""Server configuration: typed keys, safe defaults, validation on every write.

``server.config.http_port = 8000`` and ``server.config.update(...)`` both go
through the same validation, so a bad value is caught where it is written,
not later when the server starts listening.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

__all__ = ["Config", "ConfigKey", "CONFIG_KEYS"]

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _check_host(value: Any) -> Optional[str]:
    if not isinstance(value, str):
        return "must be a string"
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if _HOSTNAME.match(value):
        return None
    return "is not an IP address or host name"


def _check_port(value: Any) -> Optional[str]:
    if type(value) is not int:
        return "must be an int"
    if not 0 <= value <= 65535:
        return "must be in 0..65535"
    return None


def _check_bool(value: Any) -> Optional[str]:
    return None if isinstance(value, bool) else "must be a bool"


def _positive_int(value: Any) -> Optional[str]:
    if type(value) is not int:
        return "must be an int"
    return None if value > 0 else "must be > 0"


def _non_negative_int(value: Any) -> Optional[str]:
    if type(value) is not int:
        return "must be an int"
    return None if value >= 0 else "must be >= 0"


def _non_negative_number(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number"
    return None if value >= 0 and value == value else "must be >= 0"


def _optional_endpoint(value: Any) -> Optional[str]:
    if value is None or (isinstance(value, str) and value.strip()):
        return None
    return "must be None or a Twisted endpoint string"


def _choice(*choices: str) -> Callable[[Any], Optional[str]]:
    def check(value: Any) -> Optional[str]:
        return None if value in choices else f"must be one of {', '.join(map(repr, choices))}"
    return check


def _push_backend(value: Any) -> Optional[str]:
    if value == "local" or (isinstance(value, str) and value.startswith(("redis://",
                                                                          "rediss://"))):
        return None
    return "must be 'local' or a Redis URL redis://[:password@]host:port/db"


def _optional_name(value: Any) -> Optional[str]:
    if value is None or (isinstance(value, str) and value.strip() and not any(
            c.isspace() for c in value)):
        return None
    return "must be None or a non-empty name without spaces"


def _name(value: Any) -> Optional[str]:
    return "must not be None" if value is None else _optional_name(value)


def _optional_path(value: Any) -> Optional[str]:
    if value is None or (isinstance(value, str) and value.startswith("/")
                         and not any(c.isspace() or c in "?#" for c in value)):
        return None
    return "must be None or a path starting with /"


def _positive_number(value: Any) -> Optional[str]:
    problem = _non_negative_number(value)
    if problem is None and value == 0:
        return "must be > 0"
    return problem


def _str_list(value: Any) -> Optional[str]:
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
        return None
    return "must be a list of non-empty strings"


@dataclass(frozen=True)
class ConfigKey:
    """One configuration key: its default, its check, and what it means."""

    name: str
    default: Any
    check: Callable[[Any], Optional[str]]
    doc: str


CONFIG_KEYS: Tuple[ConfigKey, ...] = (
    ConfigKey("http_host", "127.0.0.1", _check_host, "HTTP bind address"),
    ConfigKey("http_port", 8000, _check_port, "HTTP port (0 = any free port)"),
    ConfigKey("tcp_host", "127.0.0.1", _check_host, "TCP bind address"),
    ConfigKey("tcp_port", 8001, _check_port, "TCP port (0 = any free port)"),
    ConfigKey("tcp_keep_alive", False, _check_bool,
              "keep TCP connections open after a reply (needed for push)"),
    ConfigKey("info", True, _check_bool, "log requests and lifecycle events"),
    ConfigKey("debug", False, _check_bool,
              "include tracebacks in 500 error bodies (never in production)"),
    ConfigKey("http_endpoint", None, _optional_endpoint,
              "Twisted endpoint string for HTTP; overrides http_host/http_port"),
    ConfigKey("tcp_endpoint", None, _optional_endpoint,
              "Twisted endpoint string for TCP; overrides tcp_host/tcp_port"),
    ConfigKey("max_line_length", 65536, _positive_int,
              "longest TCP request line in bytes; longer gets an error and a close"),
    ConfigKey("max_output_buffer", 8 * 1024 * 1024, _positive_int,
              "unsent bytes a TCP client may fall behind before it is disconnected"),
    ConfigKey("max_pending_per_connection", 64, _positive_int,
              "TCP commands in flight on one connection before reading pauses"),
    ConfigKey("tcp_idle_timeout", 0, _non_negative_number,
              "seconds before an idle TCP connection (no input, no command in flight) "
              "is closed (0 = never)"),
    ConfigKey("tcp_keepalive_probes", True, _check_bool,
              "enable TCP keepalive on TCP clients so dead peers are eventually dropped"),
    ConfigKey("max_tcp_connections", 10000, _positive_int,
              "concurrent TCP connections; further ones get an error line and a close"),
    ConfigKey("http_idle_timeout", 60, _non_negative_number,
              "seconds before an idle HTTP connection is closed (0 = never)"),
    ConfigKey("max_body_size", 10 * 1024 * 1024, _positive_int,
              "largest HTTP request body in bytes; larger is answered 413"),
    ConfigKey("header_timeout", 20, _non_negative_number,
              "seconds a request's headers may take to arrive (0 = no limit)"),
    ConfigKey("min_body_rate", 500, _non_negative_number,
              "slowest accepted request body, bytes/s over 10 s windows (0 = no limit)"),
    ConfigKey("max_http_connections", 10000, _positive_int,
              "concurrent HTTP connections; further ones are closed at once"),
    ConfigKey("max_http_connections_per_ip", 0, _non_negative_int,
              "concurrent HTTP connections per client address (0 = no limit)"),
    ConfigKey("bg_threads", 10, _positive_int,
              "size of the background-job thread pool"),
    ConfigKey("bg_max_queued", 10000, _positive_int,
              "background jobs that may wait for a thread; more are refused (503)"),
    ConfigKey("shutdown_timeout", 5.0, _non_negative_number,
              "seconds stop() waits for in-flight work and background jobs"),
    ConfigKey("request_id_header", False, _check_bool,
              "send each HTTP request's g.request_id as an X-Request-ID header"),
    # -- part two (SPEC §12-17) --
    ConfigKey("max_topics_per_connection", 100, _positive_int,
              "topics one push target may subscribe to; one more is a ValueError"),
    ConfigKey("push_backend", "local", _push_backend,
              '"local" (in process) or a Redis URL redis://[:password@]host:port/db'),
    ConfigKey("node_id", None, _optional_name,
              'this node\'s name in presence and logs (None: "<hostname>-<pid>")'),
    ConfigKey("cluster_prefix", "pyliteflux", _name,
              "prefix of every Redis channel and key (apps can share one Redis)"),
    ConfigKey("presence_ttl", 30.0, _positive_number,
              "seconds after which a node that stopped refreshing drops out of presence"),
    ConfigKey("websocket_path", "/ws", _optional_path,
              "WebSocket endpoint on every HTTP listener (None: off)"),
    ConfigKey("websocket_origins", [], _str_list,
              'origins allowed besides same-origin; ["*"] allows all'),
    ConfigKey("websocket_ping_interval", 30.0, _non_negative_number,
              "seconds between WebSocket pings; no pong within one interval closes (0: off)"),
    ConfigKey("sse_path", "/events", _optional_path,
              "SSE push endpoint on every HTTP listener (None: off)"),
    ConfigKey("workers", 1, _positive_int, "processes serving the same listeners"),
    ConfigKey("metrics_endpoint", None, _optional_endpoint,
              "Twisted endpoint string serving /metrics, /healthz and /readyz (None: off)"),
    ConfigKey("log_format", "text", _choice("text", "json"),
              'log events as text lines or as one JSON object per line ("json")'),
    ConfigKey("http_engine", "twisted", _choice("twisted", "llhttp"),
              '"twisted" (a twisted.web Site) or "llhttp" (httptools, our own HTTP/1.1)'),
)

_KEYS: Dict[str, ConfigKey] = {key.name: key for key in CONFIG_KEYS}


class Config:
    """The server's settings; every assignment is validated.

    Unknown keys and bad values raise ``ValueError`` naming the key, and
    ``update()`` is all-or-nothing: nothing changes if any value is bad.
    """

    def __init__(self, **values: Any) -> None:
        for key in CONFIG_KEYS:
            default = key.default
            object.__setattr__(self, key.name, list(default) if isinstance(default, list)
                               else default)
        if values:
            self.update(**values)

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not keys (keys are set in __init__);
        # it also tells type checkers that keys are dynamic attributes.
        raise AttributeError(f"unknown config key {name!r}")

    @staticmethod
    def _validate(name: str, value: Any) -> None:
        key = _KEYS.get(name)
        if key is None:
            raise ValueError(f"unknown config key {name!r}")
        problem = key.check(value)
        if problem is not None:
            raise ValueError(f"config key {name!r} {problem} (got {value!r})")

    def __setattr__(self, name: str, value: Any) -> None:
        self._validate(name, value)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"config keys cannot be deleted ({name!r})")

    def update(self, values: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        """Set several keys at once; all are validated before any is set."""
        merged = dict(values or {}, **kwargs)
        for name, value in merged.items():
            self._validate(name, value)
        for name, value in merged.items():
            object.__setattr__(self, name, value)

    def as_dict(self) -> Dict[str, Any]:
        """A snapshot of every key and its current value."""
        return {key.name: getattr(self, key.name) for key in CONFIG_KEYS}

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"Config({items})"


# -- loading settings from files and the environment ---------------------------------

#: Prefix of the environment variables that map onto config keys.
ENV_PREFIX = "PYLITEFLUX_"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def parse_config_value(name: str, text: str) -> Any:
    """Convert the string ``text`` to the type of key ``name``'s default.

    Used for environment variables and INI files, whose values are strings:
    bools accept 1/0, true/false, yes/no, on/off; ints fall back to a float
    (the key's own check then decides); a key whose default is ``None`` (the
    endpoint strings) takes the text, with an empty value or ``none`` meaning
    ``None``. Raises ``ValueError`` naming the key.
    """
    key = _KEYS.get(name)
    if key is None:
        raise ValueError(f"unknown config key {name!r}")
    text = text.strip()
    default = key.default
    if text.lower() in ("", "none") and key.check(None) is None:
        return None
    if isinstance(default, list):  # comma-separated
        return [item.strip() for item in text.split(",") if item.strip()]
    if isinstance(default, bool):
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"config key {name!r} must be a bool (got {text!r})")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"config key {name!r} must be a number (got {text!r})") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"config key {name!r} must be a number (got {text!r})") from None
    if default is None:
        return None if text.lower() in ("", "none") else text
    return text


def config_from_env(environ: Optional[Mapping[str, str]] = None) -> Tuple[Dict[str, Any], list]:
    """Settings from ``PYLITEFLUX_<KEY>`` environment variables.

    Returns ``(values, unknown)``: the converted values by key name, and the
    names of ``PYLITEFLUX_*`` variables that match no key (the caller warns).
    ``PYLITEFLUX_APP`` is not a config key and is left to the caller; nor are
    the ``PYLITEFLUX_WORKER_*`` variables a supervisor gives its workers.
    """
    import os

    environ = os.environ if environ is None else environ
    values: Dict[str, Any] = {}
    unknown = []
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var == ENV_PREFIX + "APP" \
                or var.startswith(ENV_PREFIX + "WORKER_"):  # set for workers (SPEC §15)
            continue
        name = var[len(ENV_PREFIX):].lower()
        if name not in _KEYS:
            unknown.append(var)
            continue
        try:
            values[name] = parse_config_value(name, environ[var])
        except ValueError as exc:
            raise ValueError(f"environment variable {var}: {exc}") from None
    return values, unknown


def config_from_file(path: str) -> Dict[str, Any]:
    """Settings from a TOML (``*.toml``) or INI file.

    TOML: keys at the top level or in a ``[pyliteflux]`` table, typed as TOML
    types (``http_port = 9000``). INI: a ``[pyliteflux]`` section, values
    converted like environment variables. Raises ``ValueError`` (bad syntax,
    unknown key, wrong type) or ``OSError`` (cannot read the file).
    """
    if path.endswith(".toml"):
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                raise ValueError("reading TOML needs Python 3.11+ or the tomli package; "
                                 "use an INI file instead") from None
        with open(path, "rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"{path}: invalid TOML: {exc}") from None
        table = data.get("pyliteflux", data)
        if not isinstance(table, dict):
            raise ValueError(f"{path}: [pyliteflux] must be a table")
        values = {k: v for k, v in table.items() if not (k == "pyliteflux" and table is data)}
        for name in values:
            if name not in _KEYS:
                raise ValueError(f"{path}: unknown config key {name!r}")
        return values
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except configparser.Error as exc:
        raise ValueError(f"{path}: invalid INI file: {exc}") from None
    if not parser.has_section("pyliteflux"):
        raise ValueError(f"{path}: no [pyliteflux] section")
    try:
        return {name: parse_config_value(name, text)
                for name, text in parser.items("pyliteflux")}
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


__all__ += ["ENV_PREFIX", "parse_config_value", "config_from_env", "config_from_file"]
