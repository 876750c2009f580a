"""The streaming helpers' public home: ``from pyliteflux.streaming import ...``.

``in_thread`` (blocking iterators on the job pool) and the server-sent
events helpers; they live in ``core.streaming`` and ``core.sse``.
"""

from .core.sse import SSEStream, sse_event, sse_response
from .core.streaming import StreamProducer, stream
from .core.threaded import ThreadedIterator, in_thread

__all__ = ["in_thread", "ThreadedIterator", "sse_event", "sse_response", "SSEStream",
           "StreamProducer", "stream"]
