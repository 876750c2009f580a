"""``twistd pyliteflux``: serve a pyliteflux app as a Twisted application.

``Options`` parses the command line and loads the app; ``makeService``
returns the app's service tree (``Server.make_service``: one listener per
endpoint plus the background-job runner), the same tree ``server.run()``
and ``python -m pyliteflux`` use.

Settings are applied in this order, later ones winning: the app's own code,
``--config FILE``, ``PYLITEFLUX_*`` environment variables, then the
command-line options. Every value is validated by ``server.config``; a bad
one is a usage error (non-zero exit, no traceback), as is an app that
cannot be imported or an endpoint string that does not parse.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import usage

from .app import Server
from .config import ENV_PREFIX, config_from_env, config_from_file
from .service.loading import AppLoadError
from .service.loading import load_app as load_server

__all__ = ["Options", "makeService", "load_app"]

_log = Logger(namespace="pyliteflux.tap")

_ENV_DOC = ", ".join(
    f"{ENV_PREFIX}{name.upper()}" for name in
    ("http_port", "http_host", "tcp_port", "tcp_host", "tcp_keep_alive",
     "http_endpoint", "tcp_endpoint", "bg_threads", "shutdown_timeout", "info", "debug")
)


def load_app(spec: str) -> Server:
    """Import ``module:attribute`` and return the ``Server`` it names (see
    ``service.loading.load_app``); a failure is a ``usage.UsageError``."""
    try:
        return load_server(spec, Server)  # type: ignore[no-any-return]
    except AppLoadError as exc:
        raise usage.UsageError(str(exc)) from None


def check_endpoint(option: str, desc: str) -> str:
    """Parse ``desc`` as a server endpoint string without listening.

    ``ssl:`` endpoints load their key and certificate here, so a missing file
    is reported at startup, with the option it came from.
    """
    try:
        serverFromString(None, desc)
    except Exception as exc:
        why = str(exc) or type(exc).__name__
        raise usage.UsageError(f"{option} {desc!r} is not a valid server endpoint: {why}") \
            from None
    return desc


class Options(usage.Options):
    synopsis = "[--app module:attribute] [options]"
    longdesc = (
        "Serve a pyliteflux app over HTTP and line-delimited TCP. Without --app, "
        "serve the bundled demo app. Endpoints are Twisted endpoint strings, e.g. "
        "tcp:8000:interface=127.0.0.1, ssl:8443:privateKey=key.pem:certKey=cert.pem, "
        "unix:/run/app.sock; --http and --tcp may be repeated, and 'none' disables "
        "that side. Settings apply in this order, later winning: the app's code, "
        "--config FILE (TOML, or INI with a [pyliteflux] section), PYLITEFLUX_<KEY> "
        "environment variables (e.g. PYLITEFLUX_HTTP_PORT=9000; also PYLITEFLUX_APP), "
        "then these options. Any config key works as a variable, e.g. " + _ENV_DOC + "."
    )

    optParameters = [
        ["app", "a", None, "The app: module:attribute naming a pyliteflux Server or a "
         "factory returning one (default: the bundled demo)."],
        ["config", "c", None, "A TOML or INI file of config keys (see docs/operations.md)."],
        ["threads", "t", None, "Background-job thread pool size (config bg_threads).",
         int],
        ["shutdown-timeout", None, None, "Seconds a graceful shutdown may take in total "
         "(config shutdown_timeout).", float],
        ["push-backend", None, None, "'local' or a Redis URL redis://[:password@]host:port/db "
         "(config push_backend)."],
        ["node-id", None, None, "This node's name in presence and logs (config node_id)."],
        ["workers", "w", None, "Worker processes serving the same listeners (config workers).",
         int],
        ["metrics", None, None, "Endpoint string serving /metrics, /healthz and /readyz "
         "(config metrics_endpoint), e.g. tcp:9100:interface=127.0.0.1."],
        ["log-format", None, None, "'text' or 'json' (config log_format)."],
        ["http-engine", None, None, "'twisted' or 'llhttp' (config http_engine)."],
    ]

    #: options that set one config key each: option name -> key
    config_options = {"push-backend": "push_backend", "node-id": "node_id",
                      "workers": "workers", "metrics": "metrics_endpoint",
                      "log-format": "log_format", "http-engine": "http_engine"}
    optFlags = [
        ["keep-alive", "k", "Keep TCP connections open after a reply (needed for push)."],
        ["quiet", "q", "Do not log requests and lifecycle events (config info = false)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["http"] = []
        self["tcp"] = []
        self.server: Optional[Server] = None
        self.endpoints: Dict[str, List[str]] = {}
        #: the arguments parsed (workers are started with them, SPEC §15)
        self.argv: List[str] = []

    def parseOptions(self, options: Optional[List[str]] = None) -> None:
        import sys

        self.argv = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)

    def opt_http(self, desc: str) -> None:
        """A Twisted endpoint string for HTTP (repeatable), or 'none'."""
        self["http"].append(desc if desc.lower() == "none" else check_endpoint("--http", desc))

    def opt_tcp(self, desc: str) -> None:
        """A Twisted endpoint string for the TCP protocol (repeatable), or 'none'."""
        self["tcp"].append(desc if desc.lower() == "none" else check_endpoint("--tcp", desc))

    opt_H = opt_http
    opt_T = opt_tcp

    def postOptions(self) -> None:
        environ = os.environ
        spec = self["app"] or environ.get(ENV_PREFIX + "APP") or None
        if spec:
            server = load_app(spec)
        else:
            from .demo import make_server

            server = make_server()
        self.server = server
        config = server.config

        values: Dict[str, Any] = {}
        if self["config"]:
            try:
                values.update(config_from_file(self["config"]))
            except OSError as exc:
                raise usage.UsageError(f"--config {self['config']}: {exc.strerror or exc}") \
                    from None
            except ValueError as exc:
                raise usage.UsageError(f"--config: {exc}") from None
        try:
            env_values, unknown = config_from_env(environ)
        except ValueError as exc:
            raise usage.UsageError(str(exc)) from None
        for var in unknown:
            _log.warn("ignoring unknown environment variable {var}", var=var)
        values.update(env_values)
        if self["threads"] is not None:
            values["bg_threads"] = self["threads"]
        if self["shutdown-timeout"] is not None:
            values["shutdown_timeout"] = self["shutdown-timeout"]
        for option, key in self.config_options.items():
            if self[option] is not None:
                values[key] = self[option]
        if self["keep-alive"]:
            values["tcp_keep_alive"] = True
        if self["quiet"]:
            values["info"] = False
        try:
            config.update(values)
        except ValueError as exc:
            raise usage.UsageError(str(exc)) from None
        for key in ("http_endpoint", "tcp_endpoint", "metrics_endpoint"):
            desc = getattr(config, key)
            if desc is not None:
                check_endpoint(key, desc)

        endpoints = server.endpoints()
        for side in ("http", "tcp"):
            given = self[side]
            if not given:
                continue
            if any(d.lower() == "none" for d in given):
                if len(given) > 1:
                    raise usage.UsageError(f"--{side} none cannot be combined with endpoints")
                endpoints[side] = []
            else:
                endpoints[side] = list(given)
        if not endpoints["http"] and not endpoints["tcp"]:
            raise usage.UsageError("nothing to serve: both --http and --tcp are none")
        self.endpoints = endpoints


def makeService(options: Options) -> Any:
    """The app's service tree, ready for ``twistd`` (or ``python -m pyliteflux``);
    with ``workers`` > 1 the supervisor of that many workers (SPEC §15)."""
    server = options.server
    if server is None:  # options built by hand without parseOptions()
        options.postOptions()
        server = options.server
    assert server is not None
    if server.config.workers > 1:
        service = make_supervisor(options)
    else:
        service = server.make_service(endpoints=options.endpoints)
        service.owns_reactor = True  # server.stop() under twistd stops the process
    if server.config.log_format == "json":  # twistd logs to it (service.runner.TwistdLogging)
        from .log import console_observer

        service.log_observer = console_observer("json")
    return service


def worker_command(options: Options) -> List[str]:
    """What a worker runs: ``python -m pyliteflux`` with the same arguments."""
    import sys

    return [sys.executable, "-m", "pyliteflux", *options.argv]


def make_supervisor(options: Options) -> Any:
    """The supervisor of ``config.workers`` workers running ``worker_command``.

    Under twistd a crash loop exits non-zero too: once twistd has finished
    (pid file removed), the process exits with status 1.
    """
    import atexit

    from .service.supervisor import Supervisor

    server = options.server
    assert server is not None
    supervisor = Supervisor(options.endpoints, server.config, worker_command(options),
                            lambda: server.reactor)

    def exit_status() -> None:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)

    supervisor.on_failure = lambda: atexit.register(exit_status)
    return supervisor
