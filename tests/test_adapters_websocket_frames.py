"""Server text frames and the ws-json / ws-xml push formats."""

from twisted.trial.unittest import SynchronousTestCase

from pyliteflux.adapters.websocket.frames import WS_JSON, WS_XML, close_frame, text_frame
from pyliteflux.push.target import PUSH_FORMATS


class FrameTests(SynchronousTestCase):
    def test_length_encodings(self):
        self.assertEqual(text_frame(b"hi"), b"\x81\x02hi")
        self.assertEqual(text_frame(b"x" * 200)[:4], b"\x81\x7e\x00\xc8")
        self.assertEqual(text_frame(b"x" * 70000)[:10], b"\x81\x7f" + (70000).to_bytes(8, "big"))
        self.assertEqual(close_frame(1001), b"\x88\x02\x03\xe9")

    def test_push_formats_are_framed_once(self):
        self.assertEqual(PUSH_FORMATS[WS_JSON]("m", "t"),
                         text_frame(b'{"type": "push", "topic": "t", "data": "m"}'))
        self.assertTrue(PUSH_FORMATS[WS_XML]({"k": 1}, None).endswith(b"<push><k>1</k></push>"))
