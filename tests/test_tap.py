"""``twistd pyliteflux``: the plugin, its options, ``makeService``, TLS and an
end-to-end run of ``twistd -n pyliteflux`` in a subprocess.

Subprocess tests never sleep: they read the child's log lines through a
queue with bounded deadlines, and wait on the child with timeouts.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import types
import urllib.request
from typing import Any, Dict, List, Optional

from twisted.application.service import IService, IServiceMaker
from twisted.internet import reactor as global_reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.threads import deferToThread
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest

from pyliteflux import tap
from pyliteflux.adapters.http.site import Site
from pyliteflux.adapters.tcp import LineFactory
from pyliteflux.app import Server
from pyliteflux.core.routing import Router

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL = "tcp:0:interface=127.0.0.1"
# twistd re-raises the signal that stopped it once it has shut down cleanly
STOPPED_BY_SIGTERM = (0, -signal.SIGTERM)
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def clean_environ(**extra: str) -> Dict[str, str]:
    """The environment minus PYLITEFLUX_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYLITEFLUX_")}
    env.update(extra)
    return env


def subprocess_env() -> Dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return clean_environ(PYTHONPATH=REPO + (os.pathsep + path if path else ""),
                         PYTHONUNBUFFERED="1")


class FakeAppModule:
    """Installs a throwaway module ``name`` in ``sys.modules`` for ``--app``."""

    def __init__(self, case: unittest.TestCase, name: str, **attrs: Any) -> None:
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
        case.addCleanup(sys.modules.pop, name, None)


class PluginTests(unittest.TestCase):
    def test_plugin_is_found(self) -> None:
        import twisted.plugins

        makers = {p.tapname: p for p in getPlugins(IServiceMaker, twisted.plugins)}
        self.assertIn("pyliteflux", makers)
        maker = makers["pyliteflux"]
        self.assertIs(maker.options, tap.Options)
        self.assertIn("pyliteflux", maker.description)


class OptionsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.patch(os, "environ", clean_environ())

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(argv))
        return options

    def assertUsageError(self, argv: List[str], *fragments: str) -> str:
        with self.assertRaises(usage.UsageError) as caught:
            self.parse(*argv)
        message = str(caught.exception)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message

    def test_default_is_the_demo_on_the_configured_ports(self) -> None:
        options = self.parse()
        server = options.server
        self.assertIsInstance(server, Server)
        self.assertEqual(options.endpoints, {"http": ["tcp:8000:interface=127.0.0.1"],
                                             "tcp": ["tcp:8001:interface=127.0.0.1"]})
        self.assertIn("subscribe", server.router.commands())
        self.assertTrue(server.config.tcp_keep_alive)

    def test_demo_uses_its_own_router(self) -> None:
        from pyliteflux.core.routing import Route

        before = len(Route.default)
        server = self.parse().server
        self.assertIsNot(server.router, Route.default)
        self.assertEqual(len(Route.default), before)

    def test_endpoints_repeat_and_none_disables_a_side(self) -> None:
        options = self.parse("--http", "tcp:9000:interface=127.0.0.1",
                             "--http", "tcp:9002:interface=127.0.0.1", "--tcp", "none")
        self.assertEqual(options.endpoints, {
            "http": ["tcp:9000:interface=127.0.0.1", "tcp:9002:interface=127.0.0.1"],
            "tcp": []})

    def test_both_sides_none_is_an_error(self) -> None:
        self.assertUsageError(["--http", "none", "--tcp", "none"], "nothing to serve")

    def test_none_with_endpoints_is_an_error(self) -> None:
        self.assertUsageError(["--tcp", "none", "--tcp", LOCAL], "cannot be combined")

    def test_bad_endpoint(self) -> None:
        self.assertUsageError(["--http", "bogus:1"], "--http 'bogus:1'",
                              "not a valid server endpoint", "Unknown endpoint type")
        self.assertUsageError(["--tcp", "tcp:notaport"], "--tcp 'tcp:notaport'")

    def test_ssl_endpoint_with_missing_files(self) -> None:
        self.assertUsageError(["--http", "ssl:8443:privateKey=/nonexistent/key.pem"],
                              "--http", "No such file")

    def test_bad_app_spec(self) -> None:
        self.assertUsageError(["--app", "no_colon"], "module:attribute")

    def test_app_module_missing(self) -> None:
        self.assertUsageError(["--app", "no_such_module_xyz:server"],
                              "no module named 'no_such_module_xyz'")

    def test_app_attribute_missing(self) -> None:
        FakeAppModule(self, "fake_app_empty")
        self.assertUsageError(["--app", "fake_app_empty:server"], "has no attribute 'server'")

    def test_app_not_a_server(self) -> None:
        FakeAppModule(self, "fake_app_wrong", server=42)
        self.assertUsageError(["--app", "fake_app_wrong:server"], "expected a pyliteflux Server",
                              "int")

    def test_app_import_error_is_reported_briefly(self) -> None:
        path = self.mktemp()
        os.makedirs(path)
        with open(os.path.join(path, "broken_app_xyz.py"), "w") as f:
            f.write("raise RuntimeError('boom at import')\n")
        sys.path.insert(0, path)
        self.addCleanup(sys.path.remove, path)
        self.addCleanup(sys.modules.pop, "broken_app_xyz", None)
        self.assertUsageError(["--app", "broken_app_xyz:server"], "importing broken_app_xyz failed",
                              "RuntimeError: boom at import")

    def test_app_instance_and_factory(self) -> None:
        server = Server(router=Router())
        FakeAppModule(self, "fake_app_ok", server=server, create=lambda: server)
        self.assertIs(self.parse("--app", "fake_app_ok:server").server, server)
        self.assertIs(self.parse("--app", "fake_app_ok:create").server, server)

    def test_app_from_the_environment(self) -> None:
        server = Server(router=Router())
        FakeAppModule(self, "fake_app_env", server=server)
        os.environ["PYLITEFLUX_APP"] = "fake_app_env:server"
        self.assertIs(self.parse().server, server)

    def test_examples_import_from_the_working_directory(self) -> None:
        """``--app examples.hello:server`` imports (and does not block in run())."""
        self.patch(os, "getcwd", lambda: REPO)
        from pyliteflux.core.routing import Route

        with Route.isolated():
            options = self.parse("--app", "examples.hello:server")
        self.addCleanup(sys.modules.pop, "examples.hello", None)
        self.assertEqual(options.server.router.match_http("GET", "/hello").path_params, {})

    def test_options_set_config(self) -> None:
        options = self.parse("--keep-alive", "--threads", "3", "--shutdown-timeout", "1.5",
                             "--quiet")
        config = options.server.config
        self.assertEqual((config.tcp_keep_alive, config.bg_threads, config.shutdown_timeout,
                          config.info), (True, 3, 1.5, False))

    def test_bad_option_values(self) -> None:
        self.assertUsageError(["--threads", "0"], "'bg_threads'", "> 0")
        self.assertUsageError(["--threads", "many"], "invalid literal for int()")

    def test_environment_variables(self) -> None:
        os.environ.update(PYLITEFLUX_HTTP_PORT="9000", PYLITEFLUX_TCP_KEEP_ALIVE="no",
                          PYLITEFLUX_SHUTDOWN_TIMEOUT="2.5",
                          PYLITEFLUX_TCP_ENDPOINT="tcp:9101:interface=127.0.0.1")
        options = self.parse()
        config = options.server.config
        self.assertEqual((config.http_port, config.tcp_keep_alive, config.shutdown_timeout),
                         (9000, False, 2.5))
        self.assertEqual(options.endpoints, {"http": ["tcp:9000:interface=127.0.0.1"],
                                             "tcp": ["tcp:9101:interface=127.0.0.1"]})

    def test_bad_environment_variable(self) -> None:
        os.environ["PYLITEFLUX_HTTP_PORT"] = "eighty"
        self.assertUsageError([], "PYLITEFLUX_HTTP_PORT", "http_port")
        os.environ["PYLITEFLUX_HTTP_PORT"] = "70000"
        self.assertUsageError([], "http_port", "0..65535")

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.mktemp(), name)
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_toml_config_file(self) -> None:
        path = self.write("app.toml", "[pyliteflux]\nhttp_port = 9100\nbg_threads = 4\n"
                                      "tcp_endpoint = \"tcp:9101:interface=127.0.0.1\"\n")
        options = self.parse("--config", path)
        self.assertEqual(options.server.config.http_port, 9100)
        self.assertEqual(options.server.config.bg_threads, 4)
        self.assertEqual(options.endpoints["tcp"], ["tcp:9101:interface=127.0.0.1"])

    def test_toml_top_level_keys(self) -> None:
        path = self.write("app.toml", "http_port = 9100\n")
        self.assertEqual(self.parse("--config", path).server.config.http_port, 9100)

    def test_ini_config_file(self) -> None:
        path = self.write("app.ini", "[pyliteflux]\nhttp_port = 9200\ntcp_keep_alive = false\n"
                                     "shutdown_timeout = 3\n")
        config = self.parse("--config", path).server.config
        self.assertEqual((config.http_port, config.tcp_keep_alive, config.shutdown_timeout),
                         (9200, False, 3.0))

    def test_precedence_file_then_env_then_options(self) -> None:
        path = self.write("app.toml", "http_port = 9100\ntcp_port = 9101\nbg_threads = 2\n")
        os.environ.update(PYLITEFLUX_TCP_PORT="9201", PYLITEFLUX_BG_THREADS="5")
        config = self.parse("--config", path, "--threads", "7").server.config
        self.assertEqual((config.http_port, config.tcp_port, config.bg_threads), (9100, 9201, 7))

    def test_bad_config_files(self) -> None:
        self.assertUsageError(["--config", "/nonexistent/app.toml"], "--config", "/nonexistent")
        path = self.write("bad.toml", "http_port = \n")
        self.assertUsageError(["--config", path], "invalid TOML")
        path = self.write("unknown.toml", "colour = 'blue'\n")
        self.assertUsageError(["--config", path], "unknown config key 'colour'")
        path = self.write("typed.toml", "http_port = '80'\n")
        self.assertUsageError(["--config", path], "'http_port'", "must be an int")
        path = self.write("nosection.ini", "[other]\nx = 1\n")
        self.assertUsageError(["--config", path], "no [pyliteflux] section")


class MakeServiceTests(unittest.TestCase):
    def setUp(self) -> None:
        self.patch(os, "environ", clean_environ())
        self.clock = MemoryReactorClock()
        self.server = Server(router=Router(), reactor=self.clock)
        self.server.config.info = False
        FakeAppModule(self, "fake_app_memory", make=lambda: self.server)

    def make(self, *argv: str) -> Any:
        options = tap.Options()
        options.parseOptions(["--app", "fake_app_memory:make", *argv])
        return tap.makeService(options)

    def test_listens_on_the_configured_endpoints(self) -> None:
        service = self.make()
        self.assertTrue(IService.providedBy(service))
        service.startService()
        self.addCleanup(service.stopService)
        servers = self.clock.tcpServers
        self.assertEqual([(port, interface) for port, _, _, interface in servers],
                         [(8000, "127.0.0.1"), (8001, "127.0.0.1")])
        self.assertIsInstance(servers[0][1], Site)
        self.assertIsInstance(servers[1][1], LineFactory)
        self.assertTrue(service.owns_reactor)

    def test_several_endpoints_share_one_factory(self) -> None:
        service = self.make("--http", "tcp:9000:interface=127.0.0.1",
                            "--http", "tcp:9002:interface=127.0.0.1", "--tcp", "none")
        service.startService()
        self.addCleanup(service.stopService)
        servers = self.clock.tcpServers
        self.assertEqual([s[0] for s in servers], [9000, 9002])
        self.assertIs(servers[0][1], servers[1][1])
        listening = self.successResultOf(service.listening())
        self.assertEqual(len(listening.ports["http"]), 2)
        self.assertEqual(listening.ports["tcp"], [])

    def test_threads_option_sizes_the_job_pool(self) -> None:
        service = self.make("--threads", "3")
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(self.server.jobs.threads, 3)

    def test_stop_service_is_graceful_and_fires(self) -> None:
        service = self.make()
        service.startService()
        self.successResultOf(service.stopService())
        self.assertFalse(service.running)


def make_self_signed(directory: str) -> Dict[str, str]:
    """Write a throwaway self-signed key and certificate for localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(directory, exist_ok=True)
    paths = {"key": os.path.join(directory, "key.pem"),
             "cert": os.path.join(directory, "cert.pem")}
    with open(paths["key"], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(paths["cert"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return paths


class TLSTests(unittest.TestCase):
    """``ssl:`` endpoints serve both HTTP and TCP (real reactor, real TLS)."""

    def test_https_and_tls_tcp(self) -> Any:
        from pyliteflux.demo import make_server

        self.patch(os, "environ", clean_environ())
        paths = make_self_signed(self.mktemp())
        ssl_desc = (f"ssl:0:interface=127.0.0.1:privateKey={paths['key']}"
                    f":certKey={paths['cert']}")
        FakeAppModule(self, "fake_app_tls", make=lambda: make_server(info=False))
        options = tap.Options()
        options.parseOptions(["--app", "fake_app_tls:make", "--http", ssl_desc, "--tcp", ssl_desc])
        service = tap.makeService(options)
        service.startService()
        context = ssl.create_default_context(cafile=paths["cert"])

        def clients(listening: Any) -> Dict[str, Any]:
            http_port, tcp_port = listening.http_port, listening.tcp_port
            url = f"https://localhost:{http_port}/hello"
            with urllib.request.urlopen(url, context=context, timeout=10) as response:
                body = json.loads(response.read())
            with socket.create_connection(("127.0.0.1", tcp_port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b'{"command": "subscribe", "id": 1}\n')
                    reply = json.loads(tls.makefile("rb").readline())
            return {"http": body, "tcp": reply}

        def check(result: Dict[str, Any]) -> None:
            self.assertEqual(result["http"], {"message": "Hello, World!"})
            self.assertEqual(result["tcp"]["message"], "subscribed")
            self.assertEqual(result["tcp"]["id"], 1)

        d = service.listening()
        d.addCallback(lambda listening: deferToThread(clients, listening))
        d.addCallback(check)
        d.addBoth(lambda result: service.stopService().addCallback(lambda _: result))
        return d


class _Child:
    """A subprocess whose merged output is read line by line into a queue."""

    def __init__(self, argv: List[str], cwd: str) -> None:
        self.proc = subprocess.Popen(argv, cwd=cwd, env=subprocess_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        self.seen: List[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first (new) output line matching ``pattern``, within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} in:\n" + "\n".join(self.seen))
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"process ended before {pattern!r}:\n" + "\n".join(self.seen))
            self.seen.append(line)
            match = regex.search(line)
            if match:
                return match

    def output(self, timeout: float = 10.0) -> str:
        """All output until the process ends."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    break
                continue
            if line is None:
                break
            self.seen.append(line)
        return "\n".join(self.seen)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class CommandLineTests(unittest.TestCase):
    """The real ``twistd`` and ``python -m pyliteflux`` command lines."""

    def run_child(self, argv: List[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=self.mktemp_dir(), env=subprocess_env(), timeout=timeout,
                              capture_output=True, text=True)

    def mktemp_dir(self) -> str:
        path = self.mktemp()
        os.makedirs(path)
        return path

    def assertCleanFailure(self, result: subprocess.CompletedProcess[str], *fragments: str) -> None:
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output)
        self.assertNotIn("Traceback", output)
        for fragment in fragments:
            self.assertIn(fragment, output)

    def test_twistd_bad_app(self) -> None:
        result = self.run_child(TWISTD + ["-n", "--pidfile=", "pyliteflux", "--app",
                                          "no_such_module_xyz:server"])
        self.assertCleanFailure(result, "no module named 'no_such_module_xyz'")

    def test_twistd_bad_endpoint(self) -> None:
        result = self.run_child(TWISTD + ["-n", "--pidfile=", "pyliteflux", "--http", "tcp:x"])
        self.assertCleanFailure(result, "--http 'tcp:x' is not a valid server endpoint")

    def test_python_m_bad_option(self) -> None:
        result = self.run_child([sys.executable, "-m", "pyliteflux", "--tcp", "bogus:1"])
        self.assertCleanFailure(result, "--tcp 'bogus:1'")
        self.assertEqual(result.returncode, 2)
        lines = result.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, result.stderr)  # the error alone, not the usage
        self.assertTrue(lines[0].startswith("python -m pyliteflux: error: --tcp 'bogus:1'"))

    def test_python_m_help_names_the_command(self) -> None:
        result = self.run_child([sys.executable, "-m", "pyliteflux", "--help"])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.startswith(
            "Usage: python -m pyliteflux [--app module:attribute] [options]"), result.stdout[:80])

    def test_python_m_port_in_use(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            result = self.run_child([sys.executable, "-m", "pyliteflux", "--http",
                                     f"tcp:{port}:interface=127.0.0.1", "--tcp", "none"])
        self.assertCleanFailure(result, "cannot listen")
        self.assertEqual(result.returncode, 1)


class EndToEndTests(unittest.TestCase):
    """``twistd -n pyliteflux`` serving the demo, stopped with SIGTERM mid-request."""

    shutdown_timeout = 5.0

    def test_sigterm_lets_requests_finish_and_tells_tcp_clients(self) -> None:
        cwd = self.mktemp()
        os.makedirs(cwd)
        child = _Child(TWISTD + ["-n", "--pidfile=", "pyliteflux", "--http", LOCAL, "--tcp", LOCAL,
                                 "--shutdown-timeout", str(self.shutdown_timeout)], cwd)
        self.addCleanup(child.kill)
        http_port = int(child.wait_for(r"HTTP listening on 127\.0\.0\.1:(\d+)").group(1))
        tcp_port = int(child.wait_for(r"TCP listening on 127\.0\.0\.1:(\d+)").group(1))
        base = f"http://127.0.0.1:{http_port}"

        with urllib.request.urlopen(base + "/hello", timeout=10) as response:
            self.assertEqual(json.loads(response.read()), {"message": "Hello, World!"})

        tcp = socket.create_connection(("127.0.0.1", tcp_port), timeout=10)
        self.addCleanup(tcp.close)
        lines = tcp.makefile("rb")
        tcp.sendall(b'{"command": "subscribe"}\n')
        client_id = json.loads(lines.readline())["client_id"]
        with urllib.request.urlopen(f"{base}/push?client_id={client_id}&message=hi",
                                    timeout=10) as response:
            self.assertEqual(json.loads(response.read()), {"status": "sent"})
        self.assertEqual(json.loads(lines.readline()), {"type": "push", "data": "hi"})

        slow: Dict[str, Any] = {}

        def slow_request() -> None:
            try:
                with urllib.request.urlopen(base + "/slow?seconds=2", timeout=15) as response:
                    slow["status"] = response.status
                    slow["body"] = json.loads(response.read())
            except Exception as exc:  # reported by the assertions below
                slow["error"] = repr(exc)

        requester = threading.Thread(target=slow_request, daemon=True)
        requester.start()
        child.wait_for(r"slow request: answering in 2s")
        started = time.monotonic()
        child.proc.send_signal(signal.SIGTERM)

        child.wait_for(r"stopped accepting")
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", http_port), timeout=5).close()

        self.assertEqual(json.loads(lines.readline()), {"type": "shutdown"})
        self.assertEqual(lines.readline(), b"")  # then a clean close
        told = time.monotonic() - started

        requester.join(15)
        self.assertEqual(slow, {"status": 200, "body": {"slept": 2.0}})

        code = child.proc.wait(self.shutdown_timeout + 5)
        exited = time.monotonic() - started
        output = child.output()
        self.assertIn(code, STOPPED_BY_SIGTERM, output)
        self.assertIn("shutdown complete", output)
        self.assertNotIn("Traceback", output)
        self.assertLess(told, self.shutdown_timeout, output)
        self.assertLess(exited, self.shutdown_timeout + 1, output)
        # The numbers, for the curious: `pytest -s` shows them.
        print(f"\nSIGTERM -> TCP shutdown line {told:.2f}s, process exit {exited:.2f}s")

    def test_python_m_stops_gracefully_on_sigint(self) -> None:
        cwd = self.mktemp()
        os.makedirs(cwd)
        child = _Child([sys.executable, "-m", "pyliteflux", "--http", LOCAL, "--tcp", LOCAL], cwd)
        self.addCleanup(child.kill)
        tcp_port = int(child.wait_for(r"TCP listening on 127\.0\.0\.1:(\d+)").group(1))
        tcp = socket.create_connection(("127.0.0.1", tcp_port), timeout=10)
        self.addCleanup(tcp.close)
        lines = tcp.makefile("rb")
        tcp.sendall(b"subscribe\n")
        self.assertIn(b"subscribed", lines.readline())
        child.proc.send_signal(signal.SIGINT)
        self.assertEqual(json.loads(lines.readline()), {"type": "shutdown"})
        self.assertEqual(child.proc.wait(10), 0)
        self.assertIn("shutdown complete", child.output())

    def test_stuck_request_cannot_hold_the_process_past_the_deadline(self) -> None:
        cwd = self.mktemp()
        os.makedirs(cwd)
        child = _Child(TWISTD + ["-n", "--pidfile=", "pyliteflux", "--http", LOCAL, "--tcp", "none",
                                 "--shutdown-timeout", "1"], cwd)
        self.addCleanup(child.kill)
        http_port = int(child.wait_for(r"HTTP listening on 127\.0\.0\.1:(\d+)").group(1))
        result: Dict[str, Any] = {}

        def stuck_request() -> None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http_port}/slow?seconds=60", timeout=30)
            except Exception as exc:
                result["error"] = exc

        requester = threading.Thread(target=stuck_request, daemon=True)
        requester.start()
        child.wait_for(r"slow request: answering in 60s")
        started = time.monotonic()
        child.proc.send_signal(signal.SIGTERM)
        code = child.proc.wait(10)
        exited = time.monotonic() - started
        output = child.output()
        self.assertIn(code, STOPPED_BY_SIGTERM, output)
        self.assertIn("abandoned 1 HTTP request(s) ['GET /slow?seconds=60']", output)
        self.assertLess(exited, 1 + 1, output)
        requester.join(10)
        self.assertIn("error", result)  # the client saw the connection go
        print(f"\nstuck request: SIGTERM -> exit {exited:.2f}s (shutdown_timeout 1s)")


del global_reactor  # imported only to make sure the default reactor is installed first
