"""Several nodes on one Redis: push to a client of any node, see who is online.

Start Redis and two nodes (see the README's "Running several nodes"):

    redis-server --port 6379 --save "" --appendonly no &
    python -m pyliteflux --app examples.cluster:server --push-backend redis://127.0.0.1:6379/0 \\
        --node-id n1 --http tcp:8000:interface=127.0.0.1 --tcp tcp:8001:interface=127.0.0.1 &
    python -m pyliteflux --app examples.cluster:server --push-backend redis://127.0.0.1:6379/0 \\
        --node-id n2 --http tcp:8010:interface=127.0.0.1 --tcp tcp:8011:interface=127.0.0.1 &

Connect to node 2 (``nc 127.0.0.1 8011``), type ``whoami`` (and maybe
``subscribe news``), then push from node 1:

    curl "http://127.0.0.1:8000/push?client_id=127.0.0.1:PORT&message=hi"
    curl "http://127.0.0.1:8000/push?topic=news&message=extra"
    curl "http://127.0.0.1:8000/push?message=everyone"
    curl "http://127.0.0.1:8000/presence"

Without ``--push-backend`` the same app runs as one node (the local backend).
"""

from pyliteflux import Router, Server

server = Server(router=Router(), tcp_keep_alive=True)


@server.route("whoami", protocol="tcp")
def whoami(request):
    """Your client id (what a push names) and the node holding you."""
    return {"client_id": request.client_id, "node": server.hub.node_id}


@server.route("subscribe", protocol="tcp")
def subscribe(request):
    """``subscribe TOPIC``: receive the topic's pushes, from any node."""
    request.connection.subscribe(request.data.strip())
    return {"topics": sorted(request.connection.topics)}


@server.route("unsubscribe", protocol="tcp")
def unsubscribe(request):
    request.connection.unsubscribe(request.data.strip())
    return {"topics": sorted(request.connection.topics)}


@server.route("/push", method=["GET", "POST"])
def push(request):
    """``?message=M`` plus ``client_id=C`` (one client, on whichever node),
    ``topic=T`` (its subscribers on every node) or neither (everyone).
    A POSTed JSON body ``{"message": ..., "client_id" | "topic": ...}`` works too."""
    params = dict(request.query_params)
    if request.method == "POST":
        params.update(request.json_data or {})
    reached = server.push_message(params.get("message", ""), params.get("client_id"),
                                  params.get("topic"))
    return {"reached_here": reached, "node": server.hub.node_id}


@server.route("/presence")
def presence(request):
    """``{client_id: node}`` of the whole cluster (``?topic=T``: its subscribers)."""
    return server.presence(request.query_params.get("topic"))


@server.route("/stats")
def stats(request):
    hub = server.hub
    return {"node": hub.node_id, "broker_up": hub.backend.up, "messages": hub.stats.messages,
            "deliveries": hub.stats.deliveries, "dropped": hub.stats.dropped}


if __name__ == "__main__":
    server.run()
