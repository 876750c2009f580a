"""The TCP adapter: the line protocol of SPEC §9 over the pipeline.

    protocol.LineFactory -> protocol.LineProtocol -> ..commands -> ..lines.parse_line
                         -> core.pipeline -> ..lines.encode_reply (write)
"""

from ..lines import encode_reply, parse_line
from .protocol import LineFactory, LineProtocol

__all__ = ["LineFactory", "LineProtocol", "parse_line", "encode_reply"]
