"""Sharing new connections fairly between the workers of one supervisor.

Every worker waits on the same listening sockets, and which one the kernel
lets accept a new connection depends on which runs first: with the cores
busy (a load generator on the same host, a burst of reconnecting devices)
one worker could take 58 of 64 connections, and long-lived connections
stay where they landed. So the workers keep a ledger, in memory the
supervisor shares with them (``os.memfd_create``, passed like the
listening sockets): per worker, how many connections it holds open and
when it was last alive. A worker that holds more than ``RATIO`` more
open connections (plus ``SLACK``) than another live worker lets the next
new one go: it stops
reading its listening sockets for ``DEFER`` seconds, and if nobody has
taken the connection by then it accepts it after all (so a worker that is
slow or stuck costs the others at most ``DEFER`` per connection, and one
that stopped beating for ``STALE`` seconds does not count at all).
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from typing import Any, Callable, Optional

__all__ = ["AcceptLedger", "RATIO", "SLACK", "DEFER", "STALE", "current", "use"]

#: a worker lets a new connection go while it holds more than
#: ``least * (1 + RATIO) + SLACK`` open ones, ``least`` being the least of
#: the other live workers' (relative, so that many short connections,
#: whose counts jitter, are rarely held back)
RATIO = 0.25
SLACK = 2
#: seconds a worker that is ahead waits before it accepts anyway
DEFER = 0.002
#: seconds without a heartbeat after which a worker is left out
STALE = 0.5
#: seconds between heartbeats
BEAT = 0.1

_SLOT = struct.Struct("=qd")  # open connections, last heartbeat (monotonic)


class AcceptLedger:
    """``workers`` slots of (open connections, heartbeat) in a shared mapping; this
    process writes slot ``me`` (None: the supervisor, which only creates it)."""

    def __init__(self, fd: int, workers: int, me: Optional[int] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fd = fd
        self.workers = workers
        self.me = me
        self.clock = clock
        self._map = mmap.mmap(fd, _SLOT.size * workers)

    @classmethod
    def create(cls, workers: int) -> Optional["AcceptLedger"]:
        """A new ledger for ``workers`` (None where memfd is not available)."""
        make = getattr(os, "memfd_create", None)
        if make is None:
            return None
        try:
            fd = make("pyliteflux-accepts", 0)  # no MFD_CLOEXEC: workers inherit it
            os.ftruncate(fd, _SLOT.size * workers)
        except OSError:
            return None
        return cls(fd, workers)

    def _read(self, n: int) -> Any:
        return _SLOT.unpack_from(self._map, n * _SLOT.size)

    def _write(self, n: int, accepted: int, beat: float) -> None:
        _SLOT.pack_into(self._map, n * _SLOT.size, accepted, beat)

    def join(self) -> None:
        """A worker (re)starting: no connections yet, and alive."""
        assert self.me is not None
        self._write(self.me, 0, self.clock())

    def beat(self) -> None:
        assert self.me is not None
        accepted, _ = self._read(self.me)
        self._write(self.me, accepted, self.clock())

    def accepted(self) -> None:
        self._add(1)

    def closed(self) -> None:
        self._add(-1)

    def _add(self, n: int) -> None:
        assert self.me is not None
        count, beat = self._read(self.me)
        self._write(self.me, max(0, count + n), beat)

    def _live_others(self, now: float) -> list:
        return [accepted for n in range(self.workers) if n != self.me
                for accepted, beat in [self._read(n)] if now - beat < STALE]

    def ahead(self) -> bool:
        """Whether this worker holds clearly more connections than a live other."""
        others = self._live_others(self.clock())
        if not others or self.me is None:
            return False
        return bool(self._read(self.me)[0] > min(others) * (1 + RATIO) + SLACK)

    def close(self) -> None:
        self._map.close()


_ledger: Optional[AcceptLedger] = None


def use(ledger: Optional[AcceptLedger]) -> None:
    """This worker's ledger (``service.worker`` sets it before adopting)."""
    global _ledger
    _ledger = ledger


def current() -> Optional[AcceptLedger]:
    return _ledger
