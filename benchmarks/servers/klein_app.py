"""Klein serving the hello JSON (same bytes and Content-Type as the reference)."""

from _common import HELLO, QuietSite, parse, ready
from klein import Klein
from twisted.internet import reactor

app = Klein()


@app.route("/hello")
def hello(request):
    request.setHeader(b"Content-Type", b"application/json")
    return HELLO


def main():
    args = parse(("hello",))
    port = reactor.listenTCP(args.port, QuietSite(app.resource()), interface="127.0.0.1")
    ready(port.getHost().port)
    reactor.run()


if __name__ == "__main__":
    main()
