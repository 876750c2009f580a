"""Listening on endpoint strings (service/listeners.py)."""

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from pyliteflux.service.listeners import ListenerService, Listening, endpoint_string


class EndpointStringTests(SynchronousTestCase):
    def test_ipv4_and_ipv6(self):
        self.assertEqual(endpoint_string("127.0.0.1", 80), "tcp:80:interface=127.0.0.1")
        self.assertEqual(endpoint_string("::1", 80), "tcp:80:interface=\\:\\:1")

    def test_listening_without_ports(self):
        listening = Listening()
        self.assertIsNone(listening.http_port)
        self.assertIsNone(listening.tcp_port)


class ListenerServiceTests(TestCase):
    async def test_listens_while_running(self):
        service = ListenerService("tcp", "tcp:0:interface=127.0.0.1",
                                  Factory.forProtocol(Protocol), lambda: reactor, lambda: False)
        service.startService()
        port = await service.listening
        self.assertGreater(port.getHost().port, 0)
        await service.stopService()
        self.assertIsNone(service.port)

    async def test_a_bad_endpoint_errbacks(self):
        service = ListenerService("tcp", "tcp:notaport", Factory.forProtocol(Protocol),
                                  lambda: reactor, lambda: False)
        service.startService()
        with self.assertRaises(ValueError):
            await service.listening
        self.flushLoggedErrors()
