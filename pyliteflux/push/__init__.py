"""The push path: targets (long-lived connections), one hub, its backends.

    Server.push_message -> hub.PushHub.push -> local deliveries
                                           -> backend (local.LocalBackend, ...)
"""

from .hub import ConnectionRegistry, PushHub
from .local import LocalBackend
from .target import PushBackend, PushTarget, TopicsMixin, encode_push, register_push_format

__all__ = ["PushHub", "ConnectionRegistry", "LocalBackend", "PushBackend", "PushTarget",
           "TopicsMixin", "encode_push", "register_push_format"]
