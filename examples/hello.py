"""The seed's quick start, verbatim: ``python examples/hello.py``.

Also runs under twistd: ``twistd -n pyliteflux --app examples.hello:server``
(while twistd imports an app, ``server.run()`` returns at once and twistd
runs the server instead).
"""
from pyliteflux import Server, Route

server = Server()

@Route.register("/hello", method="GET")
def hello(request):
    return {"message": "Hello, World!"}

server.run()
