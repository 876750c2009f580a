"""The upgrade registry of the llhttp engine."""

from twisted.trial.unittest import SynchronousTestCase

from pyliteflux.adapters.llhttp.raw import RawRequest
from pyliteflux.adapters.llhttp.upgrade import find_upgrade, register_upgrade, unregister_upgrade
from pyliteflux.config import Config


def raw(path, token):
    return RawRequest(None, b"GET", path, b"HTTP/1.1", [(b"Upgrade", token)], None, True)


class UpgradeRegistryTests(SynchronousTestCase):
    def test_lookup_by_token_and_path(self):
        def handler(request, context):
            return None

        register_upgrade("WebSocket", handler, path_key="websocket_path")
        self.addCleanup(unregister_upgrade, "websocket")
        config = Config()
        self.assertIs(find_upgrade(raw(b"/ws", b"websocket"), config), handler)
        self.assertIsNone(find_upgrade(raw(b"/other", b"websocket"), config))
        self.assertIsNone(find_upgrade(raw(b"/ws", b"h2c"), config))
        config.websocket_path = None
        self.assertIsNone(find_upgrade(raw(b"/ws", b"websocket"), config))
