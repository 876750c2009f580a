"""Our request objects: one for HTTP (wrapping Twisted's), one for TCP lines.

Everything costly (query, headers, form, JSON) is parsed on first access,
so a handler that reads nothing pays for nothing.
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP as _HTTP_POLICY
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs, unquote_to_bytes

from .codec import DecodeError, loads_json
from .errors import BadRequest, HTTPError, MethodNotAllowed, NotFound
from .headers import DictHeaders, Headers, UploadedFile
from .responses import HTTPJSONResponse
from .routing import UNMATCHED

if TYPE_CHECKING:  # pragma: no cover
    from xml.etree.ElementTree import Element

    from twisted.web.server import Request as TwistedRequest

    from ..jobs import BackgroundTasks

__all__ = ["Request", "HTTPRequest", "TCPRequest", "Headers", "DictHeaders", "UploadedFile"]


class Request:
    """What every request has, whichever protocol it came in on."""

    protocol: str = ""
    path_params: Dict[str, Any]
    client_address: Tuple[str, int]
    _jobs: Any = None  # the server's JobRunner
    _bg: "Optional[BackgroundTasks]" = None
    #: set by the pipeline when it answered with an error value (metrics' outcome)
    failed = False

    @property
    def bg(self) -> "BackgroundTasks":
        """Background jobs to start after the response (made on first use)."""
        if self._bg is None:
            from ..jobs import BackgroundTasks

            self._bg = BackgroundTasks(self._jobs)
        return self._bg

    def find_handler(self, router: Any) -> Any:
        """The handler for this request (raises ``NotFound`` and the like):
        each kind of request knows which table of the router it is served from."""
        raise NotImplementedError

    def error_value(self, exc: Optional[HTTPError], body: Dict[str, Any]) -> Any:
        """The value that answers this request with an error: ``exc`` is the
        ``HTTPError`` raised (None for an unexpected exception), ``body`` its
        JSON body."""
        raise NotImplementedError

    def validate(self) -> None:
        """Raise ``BadRequest`` if the payload is malformed (called before the handler)."""


def _decode_path(raw: bytes) -> str:
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    try:
        path = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("path is not valid UTF-8") from None
    if "\x00" in path:
        raise BadRequest("path contains a NUL byte")
    return path


def _origin_form(target: bytes) -> bytes:
    """The path of an absolute-form request target (``GET http://host/p``),
    which a server must accept (RFC 9112 §3.2.2); other targets as they are."""
    scheme, sep, rest = target.partition(b"://")
    if sep and scheme.lower() in (b"http", b"https"):
        i = rest.find(b"/")
        return rest[i:] if i >= 0 else b"/"
    return target


def _decode_query(raw: bytes, what: str = "query string") -> Dict[str, List[str]]:
    """``name=value&...`` (a query string or a url-encoded form) to lists of
    values; 400 if it, or a ``%xx`` escape in it, is not UTF-8."""
    try:
        return parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                        encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(f"{what} is not valid UTF-8") from None


class HTTPRequest(Request):
    """An HTTP request. ``raw`` is the underlying ``twisted.web`` request, or
    on the llhttp engine its ``adapters.llhttp.RawRequest`` (the same
    attributes this class reads: ``method``, ``uri``, ``path``,
    ``requestHeaders``, ``content``, ``parseCookies``/``received_cookies``,
    ``getClientAddress``)."""

    protocol = "http"
    # parsed on first access; class-level defaults keep __init__ cheap
    _path: Optional[str] = None
    _query: Optional[Dict[str, List[str]]] = None
    _headers: Optional[Headers] = None
    _body: Optional[bytes] = None
    _json: Any = None
    _json_parsed = False
    _form: Optional[Dict[str, str]] = None
    _files: Dict[str, UploadedFile] = {}  # replaced per request when a multipart form is parsed

    def __init__(self, raw: "TwistedRequest | Any", jobs: Any = None) -> None:
        self.raw = raw
        self._jobs = jobs
        self.path_params = {}
        method = raw.method
        self.method: str = _METHODS.get(method) or method.decode("ascii", "replace").upper()

    # -- URL --------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The decoded path (``%xx`` escapes resolved, UTF-8); 400 if undecodable."""
        path = self._path
        if path is None:
            raw = self.raw.path
            if raw[:1] != b"/":
                raw = _origin_form(raw)
            if b"%" not in raw:
                try:
                    path = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise BadRequest("path is not valid UTF-8") from None
                if "\x00" in path:  # pragma: no cover - only reachable as %00
                    raise BadRequest("path contains a NUL byte")
            else:
                path = _decode_path(raw)
            self._path = path
        return path

    @property
    def query_list(self) -> Dict[str, List[str]]:
        """Every query value per name."""
        if self._query is None:
            uri = self.raw.uri
            i = uri.find(b"?")
            self._query = _decode_query(uri[i + 1:]) if i >= 0 else {}
        return self._query

    @property
    def query_params(self) -> Dict[str, str]:
        """Query parameters, the first value of each name (``?a=1&a=2`` → ``"1"``)."""
        return {k: v[0] for k, v in self.query_list.items()}

    # -- headers and body -----------------------------------------------------

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self.raw.requestHeaders)
        return self._headers

    @property
    def content_type(self) -> str:
        """The media type of the body, lower-cased, without parameters."""
        values = self.raw.requestHeaders.getRawHeaders(b"content-type")
        if not values:
            return ""
        return values[-1].split(b";", 1)[0].strip().decode("latin-1").lower()

    @property
    def body(self) -> bytes:
        if self._body is None:
            content = self.raw.content
            if content is None:
                self._body = b""
            else:
                content.seek(0)
                self._body = content.read()
        return self._body

    def _is_json(self) -> bool:
        ctype = self.content_type
        return ctype == "application/json" or ctype.endswith("+json")

    @property
    def json_data(self) -> Any:
        """The parsed JSON body, or None when the body is not JSON.

        A body sent as ``application/json`` that does not parse is a 400.
        """
        if not self._json_parsed:
            self._json_parsed = True
            body = self.body
            if self._is_json():
                if not body.strip():
                    raise BadRequest("empty JSON body")
                try:
                    self._json = loads_json(body)
                except DecodeError as exc:
                    raise BadRequest(str(exc)) from None
            elif body and not self.content_type and body.lstrip()[:1] in (b"{", b"["):
                try:
                    self._json = loads_json(body)
                except DecodeError:
                    self._json = None
            else:
                self._json = None
        return self._json

    @property
    def form_data(self) -> Dict[str, str]:
        """Fields of a url-encoded or multipart form (first value per name)."""
        if self._form is None:
            self._form = {}
            ctype = self.content_type
            if ctype == "application/x-www-form-urlencoded":
                parsed = _decode_query(self.body, "form body")
                self._form = {k: v[0] for k, v in parsed.items()}
            elif ctype == "multipart/form-data":
                self._parse_multipart()
        return self._form

    @property
    def files(self) -> Dict[str, UploadedFile]:
        """File fields of a multipart form."""
        self.form_data  # noqa: B018  (parses the form, files included)
        return self._files

    def _parse_multipart(self) -> None:
        ctype = (self.raw.requestHeaders.getRawHeaders(b"content-type") or [b""])[-1]
        if b"boundary=" not in ctype:
            raise BadRequest("multipart body without a boundary")
        message = BytesParser(policy=_HTTP_POLICY).parsebytes(
            b"Content-Type: " + ctype + b"\r\nMIME-Version: 1.0\r\n\r\n" + self.body
        )
        if not message.is_multipart() or message.defects:
            raise BadRequest("malformed multipart body")
        form: Dict[str, str] = {}
        self._files = {}
        for part in message.iter_parts():
            raw_name = part.get_param("name", header="content-disposition")
            if not raw_name:
                continue
            name = raw_name if isinstance(raw_name, str) else str(raw_name[2])
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                payload = b""
            filename = part.get_filename()
            if filename is not None:
                self._files.setdefault(name, UploadedFile(filename, part.get_content_type(), payload))
            else:
                charset = part.get_content_charset() or "utf-8"
                try:
                    form.setdefault(name, payload.decode(charset))
                except (UnicodeDecodeError, LookupError):
                    raise BadRequest(f"form field {name!r} is not valid text") from None
        self._form = form

    @property
    def cookies(self) -> Dict[str, str]:
        self.raw.parseCookies()
        return {k.decode("latin-1"): v.decode("latin-1") for k, v in self.raw.received_cookies.items()}

    @property
    def client_address(self) -> Tuple[str, int]:  # type: ignore[override]
        addr = self.raw.getClientAddress()
        host = getattr(addr, "host", None)
        port = getattr(addr, "port", 0)
        return (host if host is not None else str(addr), port)

    @property
    def route(self) -> str:
        """The registered pattern this request matched (``/user/{id}``), or
        ``"<unmatched>"`` (before routing, and for a 404). It is kept on the
        Twisted request, where the access log and the metrics read it."""
        return getattr(self.raw, "route", UNMATCHED)  # type: ignore[no-any-return]

    def find_handler(self, router: Any) -> Any:
        raw: Any = self.raw
        try:
            handler, self.path_params, raw.route = router.http_route(self.method, self.path)
        except MethodNotAllowed as exc:
            raw.route = getattr(exc, "route", UNMATCHED)
            raise
        if self.method in _BODY_METHODS:  # a bad body is a 400 before the handler runs
            self.validate()
        return handler

    def error_value(self, exc: Optional[HTTPError], body: Dict[str, Any]) -> Any:
        if exc is None:
            return HTTPJSONResponse(body, 500)
        return HTTPJSONResponse(body, exc.status, exc.headers)

    def validate(self) -> None:
        if self.method in _BODY_METHODS and self._is_json():
            try:
                self.json_data  # noqa: B018  (parsing is the point)
            except BadRequest:
                self._json_parsed = False  # raise again if the handler reads it
                raise

    def __repr__(self) -> str:
        return f"<HTTPRequest {self.method} {self.raw.uri!r}>"


class TCPRequest(Request):
    """One command line received on a TCP connection."""

    protocol = "tcp"
    element: "Optional[Element]" = None
    connection: Any = None
    path_params: Dict[str, Any] = {}  # TCP commands have none (shared, read-only)
    query_params: Dict[str, str] = {}

    def __init__(
        self,
        command: str,
        data: Any,
        data_type: str,
        client_address: Tuple[str, int],
        jobs: Any = None,
        request_id: Any = None,
        line: bytes = b"",
        element: "Optional[Element]" = None,
        headers: Optional[Mapping[str, Any]] = None,
        connection: Any = None,
        client_id: Optional[str] = None,
    ) -> None:
        self.command = command
        self.data = data
        self.data_type = data_type
        self.client_address = client_address
        self.client_id = client_id or f"{client_address[0]}:{client_address[1]}"
        self._jobs = jobs
        self.id = request_id
        self.line = line
        if element is not None:
            self.element = element
        self.headers = DictHeaders(headers) if headers else _NO_HEADERS
        if connection is not None:
            self.connection = connection

    @property
    def method(self) -> str:
        return "TCP"

    @property
    def transport(self) -> str:
        """What carried the command: ``"tcp"`` (or ``"websocket"``, §14)."""
        connection = self.connection
        return connection.transport_name if connection is not None else "tcp"

    def find_handler(self, router: Any) -> Any:
        return router.command_handler(self.command)

    def error_value(self, exc: Optional[HTTPError], body: Dict[str, Any]) -> Any:
        if isinstance(exc, NotFound):
            return {"error": "Command not found", "command": self.command}
        return body

    @property
    def path(self) -> str:
        return self.command

    @property
    def json_data(self) -> Any:
        return self.data if self.data_type == "json" else None

    def __repr__(self) -> str:
        return f"<TCPRequest {self.command!r} from {self.client_id} ({self.data_type})>"


_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NO_HEADERS = DictHeaders()
