"""Reference: bare ``twisted.web`` resources (the 1.00 line of the HTTP table).

Modes:
  hello   GET /hello -> {"message": "Hello, World!"} with Content-Type
  post    POST /echo  -> the JSON body parsed and re-encoded
  params  GET /r{i}/{id} for i in 0..99 -> {"route": i, "id": id}
          (a Resource tree: 100 static children, each with a dynamic child)
"""

import json

from _common import HELLO, QuietSite, parse, ready
from twisted.internet import reactor
from twisted.web import resource


class Hello(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        return HELLO


class Echo(resource.Resource):
    isLeaf = True

    def render_POST(self, request):
        data = json.loads(request.content.read())
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(data).encode()


class Item(resource.Resource):
    isLeaf = True

    def __init__(self, route, ident):
        super().__init__()
        self.route = route
        self.ident = ident

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"route": self.route, "id": self.ident}).encode()


class RouteRoot(resource.Resource):
    def __init__(self, route):
        super().__init__()
        self.route = route

    def getChild(self, path, request):
        return Item(self.route, path.decode())


def main():
    args = parse(("hello", "post", "params"))
    root = resource.Resource()
    if args.mode == "hello":
        root.putChild(b"hello", Hello())
    elif args.mode == "post":
        root.putChild(b"echo", Echo())
    else:
        for i in range(100):
            root.putChild(b"r%d" % i, RouteRoot(i))
    port = reactor.listenTCP(args.port, QuietSite(root), interface="127.0.0.1")
    ready(port.getHost().port)
    reactor.run()


if __name__ == "__main__":
    main()
