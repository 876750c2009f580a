"""The seed's TCP chat example (TCP long connections and server push).

Run it either way:

    python examples/chat.py
    twistd -n pyliteflux --app examples.chat:server

Then connect a TCP client (``nc 127.0.0.1 8001``), type ``subscribe`` to
learn your client_id, and from another shell:

    curl "http://127.0.0.1:8000/hello?client_id=127.0.0.1:PORT"   # push after 5 s
    curl "http://127.0.0.1:8000/push?client_id=127.0.0.1:PORT&message=hi"
    curl "http://127.0.0.1:8000/broadcast?message=everyone"

The code below is the seed README's "TCP长连接和消息推送示例", unchanged, plus
the /push and /broadcast routes from its "TCP连接参数" section.
"""
from pyliteflux import Server, Route
import time

server = Server()
server.config.tcp_keep_alive = True # 启用TCP长连接

# HTTP接口:发送消息给指定客户端
@Route.register("/hello", method="GET")
def hello(request):
    # 从查询参数中获取目标client_id
    target_client = request.query_params.get("client_id")

    def heavy_task():
        time.sleep(5) # 模拟耗时操作
        server.push_message("Hello via HTTP GET!", target_client)

    request.bg.add(heavy_task)
    return {
        "message": "Hello via HTTP GET!",
        "target_client": target_client,
        "query_params": request.query_params
    }

# TCP接口:列出所有活跃连接
@Route.register("clients", protocol="tcp")
def list_clients(request):
    clients = list(server._active_connections.keys())
    return {
        "message": "Active TCP clients",
        "clients": clients,
        "count": len(clients)
    }

# TCP接口:订阅消息
@Route.register("subscribe", protocol="tcp")
def subscribe_tcp(request):
    client_id = f"{request.client_address[0]}:{request.client_address[1]}"
    return {"message": "subscribed", "client_id": client_id}

# 2. 发送消息给特定客户端
@Route.register("/push", method="GET")
def push_message(request):
    client_id = request.query_params.get("client_id")
    message = request.query_params.get("message", "Hello!")
    server.push_message(message, client_id)
    return {"status": "sent"}

# 3. 广播消息给所有客户端
@Route.register("/broadcast", method="GET")
def broadcast(request):
    message = request.query_params.get("message", "Broadcast!")
    server.push_message(message) # 不指定client_id则广播
    return {"status": "broadcasted"}

server.run()
