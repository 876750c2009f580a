"""The TCP line format of SPEC §9: parsing a request line, encoding a reply.

Shared by every transport that speaks it (TCP lines, WebSocket text
messages): a line is JSON (``{"command": ...}``), XML
(``<request command="...">``) or raw (``command rest of line``); a reply is
one line in the request's format.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..core.codec import (
    DecodeError,
    data_to_xml,
    dumps_json,
    dumps_json_line,
    loads_json,
    parse_xml,
    xml_to_data,
)
from ..core.responses import HTTPResponse, StreamResponse

__all__ = ["parse_line", "encode_reply", "LineError", "ParsedLine", "BOM"]

#: (command, data, data_type, request id, parsed XML element, headers)
ParsedLine = Tuple[str, Any, str, Any, Any, Optional[Dict[str, Any]]]


class LineError(Exception):
    """A line that cannot become a request; answered with an error line."""

    def __init__(self, message: str, data_type: str = "json", request_id: Any = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data_type = data_type
        self.request_id = request_id
        self.extra = extra

    def body(self) -> Dict[str, Any]:
        return {"error": self.message, **self.extra}


#: a UTF-8 byte-order mark, skipped (once) before a request
BOM = b"\xef\xbb\xbf"


def parse_line(line: bytes) -> ParsedLine:
    """Decode one request line; raises ``LineError`` for anything malformed."""
    first = line[:1]
    if first in (b" ", b"\t"):
        first = line.lstrip()[:1]
    data_type = "json" if first == b"{" else "xml" if first == b"<" else "raw"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise LineError("Invalid UTF-8", data_type) from None
    if data_type == "json":
        try:
            obj = loads_json(text)
        except DecodeError as exc:
            raise LineError("Invalid JSON", "json", detail=str(exc)) from None
        if not isinstance(obj, dict):
            raise LineError("A JSON request must be an object", "json")
        request_id = obj.get("id")
        command = obj.get("command")
        if not isinstance(command, str) or not command:
            raise LineError("Missing or invalid 'command'", "json", request_id)
        headers = obj.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise LineError("'headers' must be an object", "json", request_id)
        return command, obj.get("data"), "json", request_id, None, headers
    if data_type == "xml":
        try:
            element = parse_xml(text)
        except DecodeError as exc:
            raise LineError("Invalid XML", "xml", detail=str(exc)) from None
        request_id = element.get("id")
        command = element.get("command")
        if element.tag != "request" or not command:
            raise LineError("Expected <request command=\"...\">", "xml", request_id)
        return command, xml_to_data(element), "xml", request_id, element, None
    parts = text.strip().split(None, 1)
    return parts[0], (parts[1] if len(parts) > 1 else ""), "raw", None, None, None


def _one_line(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _plain(value: Any) -> Any:
    """The payload a TCP reply carries for a handler's return value."""
    if isinstance(value, HTTPResponse):
        return value.data
    if isinstance(value, tuple) and len(value) in (2, 3) and isinstance(value[1], int):
        return _plain(value[0])
    if isinstance(value, StreamResponse):
        value.close()
        return {"error": "StreamResponse is not supported over TCP"}
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return value


def encode_reply(value: Any, data_type: str, request_id: Any = None,
                 encoder: Optional[type] = None) -> bytes:
    """One reply line (without the newline) in the request's format."""
    if type(value) is dict and data_type == "json" and encoder is None:  # the common case
        if request_id is not None:
            value = {**value, "id": request_id}
        return dumps_json(value)
    if isinstance(value, HTTPResponse):
        encoder = getattr(value, "json_encoder", None) or encoder
    value = _plain(value)
    if data_type == "xml":
        attrs = {"id": str(request_id)} if request_id is not None else None
        return data_to_xml("response", value, attrs, default=_xml_default(encoder))
    if data_type == "raw":
        if isinstance(value, str):
            return _one_line(value).encode("utf-8")
        if isinstance(value, (dict, list)):
            return dumps_json_line(value, encoder)
        return _one_line("" if value is None else str(value)).encode("utf-8")
    if request_id is not None:
        value = {**value, "id": request_id} if isinstance(value, dict) else {
            "id": request_id, "result": value}
    return dumps_json_line(value, encoder)


def _xml_default(encoder: Optional[type]) -> Any:
    """What XML replies use for values XML has no form for: the JSON
    encoder's ``default`` when the response names one (else none: a 500)."""
    return encoder().default if encoder is not None else None
