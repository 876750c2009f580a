"""The seed's request-parameter and response-format examples ("请求参数", "响应格式"),
and its auth/performance/tracing scenarios ("实际应用场景"), unchanged but for
imports and the stand-ins they assume.

Run: ``python examples/api.py`` or ``twistd -n pyliteflux --app examples.api:server``, then e.g.
``curl '127.0.0.1:8000/search?keyword=twisted'``, ``curl 127.0.0.1:8000/user/1/posts/2``,
``curl -d file_name=a.txt 127.0.0.1:8000/upload``,
``curl -H 'Content-Type: application/json' -d '{"a": 1}' 127.0.0.1:8000/api/data``,
``curl -i 127.0.0.1:8000/api/error``, ``curl 127.0.0.1:8000/api/custom``,
``curl -H 'Authorization: root' 127.0.0.1:8000/admin``, ``curl 127.0.0.1:8000/trace``.
"""
import json
import time
import uuid
from datetime import datetime

from pyliteflux import HTTPJSONResponse, Logger, Middleware, Route, Server, g

server = Server()


# -- 请求参数 (request parameters) ------------------------------------------------

# 1. 查询参数
@Route.register("/search", method="GET")
def search(request):
    keyword = request.query_params.get("keyword")
    page = request.query_params.get("page", "1")
    return {"keyword": keyword, "page": page}

# 2. 路径参数
@Route.register("/user/{user_id}/posts/{post_id}", method="GET")
def get_post(request):
    user_id = request.path_params["user_id"]
    post_id = request.path_params["post_id"]
    return {"user_id": user_id, "post_id": post_id}

# 3. 表单数据
@Route.register("/upload", method="POST")
def upload(request):
    file_name = request.form_data.get("file_name")
    content = request.form_data.get("content")
    return {"file_name": file_name}

# 4. JSON数据
@Route.register("/api/data", method="POST")
def handle_json(request):
    data = request.json_data
    return {"received": data}


# -- 响应格式: HTTPJSONResponse ------------------------------------------------------

@Route.register("/api/user", method="GET")
def get_user(request):
    user_data = {"id": 1, "name": "John"}
    return HTTPJSONResponse(
        data=user_data,
        status=200,
        headers={
            "X-Custom-Header": "value",
            "Access-Control-Allow-Origin": "*"
        }
    )

# 错误响应示例
@Route.register("/api/error", method="GET")
def error_response(request):
    return HTTPJSONResponse(
        data={"error": "Not Found", "code": "404"},
        status=404,
        headers={"X-Error-Type": "NotFound"}
    )

# 自定义序列化示例
@Route.register("/api/custom", method="GET")
def custom_serialization(request):
    class CustomEncoder(json.JSONEncoder):
        def default(self, obj):
            if isinstance(obj, datetime):
                return obj.isoformat()
            return super().default(obj)

    data = {
        "timestamp": datetime.now(),
        "message": "Custom serialization"
    }

    return HTTPJSONResponse(
        data=data,
        json_encoder=CustomEncoder,
        headers={"Content-Type": "application/json"}
    )


# -- 实际应用场景 (scenarios) ------------------------------------------------------------

class AuthMiddleware(Middleware):
    def process_request(self, request):
        token = request.headers.get("Authorization")
        if token:
            g.user = self.authenticate(token)
            g.permissions = self.get_permissions(g.user)
        return None

    # stand-ins for what the seed leaves to the application
    def authenticate(self, token):
        return {"name": token}

    def get_permissions(self, user):
        return ["admin"] if user["name"] == "root" else ["user"]

@Route.register("/admin", method="GET")
def admin_panel(request):
    if not hasattr(g, "permissions") or "admin" not in g.permissions:
        return {"error": "Access denied"}, 403
    return {"message": "Welcome, admin!"}


class PerformanceMiddleware(Middleware):
    def process_request(self, request):
        g.start_time = time.time()
        g.sql_queries = []
        return None

    def process_response(self, request, response):
        duration = time.time() - g.start_time
        metrics = {
            "duration": duration,
            "sql_queries": len(g.sql_queries),
            "memory_usage": self.get_memory_usage()
        }
        Logger.info(f"Performance metrics: {metrics}")
        return response

    def get_memory_usage(self):  # stand-in
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class TracingMiddleware(Middleware):
    def process_request(self, request):
        g.trace_id = str(uuid.uuid4())
        g.span_id = str(uuid.uuid4())
        g.traces = []
        return None

    def process_response(self, request, response):
        if isinstance(response, dict):
            response["trace_id"] = g.trace_id
            response["traces"] = g.traces
        return response


def process_data():  # stand-in
    return {"rows": 3}

@Route.register("/trace", method="GET")
def traced_endpoint(request):
    g.traces.append({"event": "processing", "time": time.time()})
    result = process_data()
    g.traces.append({"event": "completed", "time": time.time()})
    return {"data": result}


server.middleware_manager.add_middleware(AuthMiddleware())
server.middleware_manager.add_middleware(PerformanceMiddleware())
server.middleware_manager.add_middleware(TracingMiddleware())

server.run()
