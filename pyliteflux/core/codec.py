"""JSON and XML encoding and decoding, shared by the HTTP and TCP adapters.

Parsing is strict and safe: JSON rejects NaN/Infinity, numbers that overflow
to infinity, over-long integers, pathological nesting and lone surrogates;
XML goes through ``defusedxml`` with DTDs and entities forbidden. Encoding
never emits NaN/Infinity and always produces one line.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, List, Optional, Type, Union
from xml.etree.ElementTree import Element, SubElement, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _xml_fromstring

__all__ = [
    "DecodeError",
    "loads_json",
    "dumps_json",
    "dumps_json_line",
    "parse_xml",
    "xml_to_data",
    "data_to_xml",
]


class DecodeError(ValueError):
    """A payload that claims a format but is not valid in it."""


def _reject_constant(name: str) -> Any:
    raise DecodeError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise DecodeError("number out of range")
    return value


_SURROGATE_ESCAPE_TEXT = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float)
_scan_once = _decoder.scan_once  # type: ignore[attr-defined]
_WS = frozenset(" \t\n\r")


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def loads_json(data: Union[bytes, str]) -> Any:
    """Parse JSON strictly; every failure is a ``DecodeError`` with a reason."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("body is not valid UTF-8") from None
    else:
        text = data
    if text[:1] == "\ufeff":
        text = text[1:]
    try:
        # the C scanner directly (what JSONDecoder.decode wraps in two regex passes)
        start = 0 if text[:1] not in _WS else len(text) - len(text.lstrip(" \t\n\r"))
        value, end = _scan_once(text, start)
    except DecodeError:
        raise
    except StopIteration as exc:
        raise DecodeError(f"invalid JSON at position {exc.value}") from None
    except RecursionError:
        raise DecodeError("JSON nested too deeply") from None
    except (ValueError, TypeError) as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None
    if end != len(text) and text[end:].strip(" \t\n\r"):
        raise DecodeError(f"invalid JSON: extra data at position {end}")
    # a lone surrogate needs a \uD8xx-\uDFxx escape: look only when one may be there
    if "\\u" in text and _SURROGATE_ESCAPE_TEXT.search(text) and _has_lone_surrogate(value):
        raise DecodeError("invalid JSON: lone surrogate in a string")
    return value


def _not_serializable(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# ``JSONEncoder.encode`` builds a new C encoder on every call; building it once
# makes encoding a small dict about three times cheaper. Same output as
# ``json.dumps(data, allow_nan=False)``; a circular structure is a
# RecursionError instead of a ValueError (both end as a 500).
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encoder = (
    _c_make_encoder(None, _not_serializable, json.encoder.encode_basestring_ascii,
                    None, ": ", ", ", False, False, False)
    if _c_make_encoder is not None else None
)
_encoder = json.JSONEncoder(allow_nan=False)


def dumps_json(data: Any, encoder: Optional[Type[json.JSONEncoder]] = None) -> bytes:
    """Encode ``data`` as UTF-8 JSON bytes (ASCII-escaped, no NaN/Infinity)."""
    if encoder is None:
        if _c_encoder is not None and type(data) in (dict, list):
            return "".join(_c_encoder(data, 0)).encode("ascii")
        return _encoder.encode(data).encode("ascii")
    return json.dumps(data, cls=encoder, allow_nan=False).encode("utf-8")


def dumps_json_line(data: Any, encoder: Optional[Type[json.JSONEncoder]] = None) -> bytes:
    """JSON guaranteed to be one line: ASCII-escaped output never holds a raw
    newline, carriage return or U+2028 (a custom encoder's output is escaped)."""
    out = dumps_json(data, encoder)
    if encoder is not None:
        out = out.replace(b"\n", b"\\n").replace(b"\r", b"\\r")
        out = out.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029")
    return out


# -- XML -----------------------------------------------------------------------


#: deepest element nesting accepted in a request (JSON's limit is Python's
#: recursion limit; this keeps ``xml_to_data``'s recursion far from it)
MAX_XML_DEPTH = 200


def parse_xml(text: Union[str, bytes]) -> Element:
    """Parse XML safely: no DTDs, no entity expansion, no external entities,
    at most ``MAX_XML_DEPTH`` levels of elements."""
    try:
        root = _xml_fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise DecodeError(f"forbidden XML construct: {type(exc).__name__}") from None
    except Exception as exc:  # ParseError, ValueError from the expat layer
        raise DecodeError(f"invalid XML: {exc}") from None
    level = [root]
    for _ in range(MAX_XML_DEPTH):
        level = [child for element in level for child in element]
        if not level:
            return root
    raise DecodeError("XML nested too deeply")


def xml_to_data(element: Element) -> Any:
    """Children as a dict (repeated tags become lists, nested elements dicts);
    a leaf element is its text."""
    children = list(element)
    if not children:
        return (element.text or "").strip() if element.text else ""
    out: Dict[str, Any] = {}
    for child in children:
        value = xml_to_data(child)
        if child.tag in out:
            existing = out[child.tag]
            if isinstance(existing, list) and getattr(existing, "_repeated", False):
                existing.append(value)
            else:
                lst: List[Any] = _RepeatedList([existing, value])
                out[child.tag] = lst
        else:
            out[child.tag] = value
    return out


class _RepeatedList(list):  # marks lists built from repeated tags
    _repeated = True


_TAG_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _fill(parent: Element, value: Any, default: Any = None) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            tag = str(key)
            if not _TAG_OK.match(tag) or tag.lower().startswith("xml"):
                child = SubElement(parent, "item", key=tag)
            else:
                child = SubElement(parent, tag)
            _fill(child, item, default)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _fill(SubElement(parent, "item"), item, default)
    elif value is None:
        pass
    elif isinstance(value, bool):
        parent.text = "true" if value else "false"
    elif isinstance(value, str):
        parent.text = _xml_safe_text(value)
    elif isinstance(value, int):  # (as JSON writes them, subclasses included)
        parent.text = int.__repr__(value)
    elif isinstance(value, float):
        if not math.isfinite(value):  # as in JSON: no NaN or Infinity
            raise ValueError("Out of range float values are not XML compliant")
        parent.text = float.__repr__(value)
    elif default is not None:  # a custom JSON encoder's ``default``
        _fill(parent, default(value), default)
    else:  # as in JSON: not silently its repr()
        raise TypeError(f"Object of type {type(value).__name__} is not XML serializable")


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe_text(text: str) -> str:
    return _XML_ILLEGAL.sub("\ufffd", text)


def data_to_xml(root: str, value: Any, attrs: Optional[Dict[str, str]] = None,
                default: Any = None) -> bytes:
    """Render ``value`` under a ``<root>`` element, as one line of UTF-8 XML.

    Newlines in text are written as character references, so the result is
    always exactly one line. Values other than dicts, lists, strings,
    numbers, booleans and None go through ``default`` (like
    ``JSONEncoder.default``); without one they are a ``TypeError``.
    """
    element = Element(root, {k: _xml_safe_text(v) for k, v in (attrs or {}).items()})
    _fill(element, value, default)
    out = tostring(element, encoding="unicode")
    out = out.replace("\r", "&#13;").replace("\n", "&#10;")
    out = out.replace("\u2028", "&#8232;").replace("\u2029", "&#8233;")
    return out.encode("utf-8")
