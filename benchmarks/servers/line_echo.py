"""Reference TCP servers: a bare ``LineReceiver``.

Modes:
  echo  each line is JSON {"command", "data", "id"}; the reply line is
        json.dumps({**data, "id": id}) (json.loads, a dict, sendLine)
  push  idle keep-alive connections; GET /broadcast on the HTTP port sends
        one line {"type": "push", "data": "broadcast"} to every connection
        (encoded once, a plain loop of sendLine) and answers {"reached": n}
"""

import json

from _common import PUSH_MESSAGE, QuietSite, parse, ready
from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver
from twisted.web import resource

CLIENTS = {}


class Echo(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line):
        obj = json.loads(line)
        reply = dict(obj.get("data") or {})
        reply["id"] = obj.get("id")
        self.sendLine(json.dumps(reply).encode())


class Idle(LineReceiver):
    delimiter = b"\n"

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.client_id = f"{peer.host}:{peer.port}"
        CLIENTS[self.client_id] = self

    def connectionLost(self, reason=None):
        CLIENTS.pop(self.client_id, None)

    def lineReceived(self, line):
        pass


class Broadcast(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        line = json.dumps({"type": "push", "data": PUSH_MESSAGE}).encode()
        n = 0
        for conn in list(CLIENTS.values()):
            conn.sendLine(line)
            n += 1
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"reached": n}).encode()


def main():
    args = parse(("echo", "push"))
    cls = Echo if args.mode == "echo" else Idle
    factory = protocol.Factory.forProtocol(cls)
    factory.noisy = False
    tcp = reactor.listenTCP(args.tcp_port, factory, interface="127.0.0.1", backlog=1024)
    if args.mode == "push":
        root = resource.Resource()
        root.putChild(b"broadcast", Broadcast())
        http = reactor.listenTCP(args.port, QuietSite(root), interface="127.0.0.1")
        ready(http.getHost().port)
    else:
        ready(tcp.getHost().port)
    reactor.run()


if __name__ == "__main__":
    main()
