"""Request header views and uploaded files: the read-only mappings handlers see."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, List, Mapping, Optional

if TYPE_CHECKING:  # pragma: no cover
    from twisted.web.http_headers import Headers as TwistedHeaders

__all__ = ["Headers", "DictHeaders", "UploadedFile"]


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only view of request headers (str values).

    ``headers["x"]`` / ``.get("x")`` give the last value; ``.getlist("x")``
    all of them.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: "TwistedHeaders") -> None:
        self._raw = raw

    def getlist(self, name: str) -> List[str]:
        values = self._raw.getRawHeaders(name.encode("latin-1", "replace"))
        return [v.decode("latin-1") for v in values] if values else []

    def __getitem__(self, name: str) -> str:
        if not isinstance(name, str):
            raise KeyError(name)
        values = self._raw.getRawHeaders(name.encode("latin-1", "replace"))
        if not values:
            raise KeyError(name)
        return values[-1].decode("latin-1")

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[name]
        except KeyError:
            return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._raw.hasHeader(name.encode("latin-1", "replace"))

    def __iter__(self) -> Iterator[str]:
        for key, _ in self._raw.getAllRawHeaders():
            yield key.decode("latin-1")

    def __len__(self) -> int:
        return sum(1 for _ in self._raw.getAllRawHeaders())

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class DictHeaders(Mapping[str, str]):
    """Case-insensitive headers from a plain dict (TCP requests may carry some)."""

    __slots__ = ("_data",)

    def __init__(self, data: Optional[Mapping[str, Any]] = None) -> None:
        self._data = {str(k).lower(): (str(k), str(v)) for k, v in (data or {}).items()}

    def __getitem__(self, name: str) -> str:
        return self._data[name.lower()][1]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        item = self._data.get(name.lower()) if isinstance(name, str) else None
        return default if item is None else item[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._data

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._data.values())

    def __len__(self) -> int:
        return len(self._data)


class UploadedFile:
    """A file field of a multipart form."""

    __slots__ = ("filename", "content_type", "data")

    def __init__(self, filename: str, content_type: str, data: bytes) -> None:
        self.filename = filename
        self.content_type = content_type
        self.data = data

    def __repr__(self) -> str:
        return f"UploadedFile({self.filename!r}, {self.content_type!r}, {len(self.data)} bytes)"
