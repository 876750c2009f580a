"""The seed's middleware example ("中间件使用"), unchanged but for imports.

Run: ``python examples/middleware.py`` then
``curl 127.0.0.1:8000/user`` (→ {"error": "Unauthorized", "authenticated": false}) and
``curl -H 'Authorization: t' 127.0.0.1:8000/user`` (→ the user, a request_id and
"authenticated": true). Also: ``twistd -n pyliteflux --app examples.middleware:server``.
"""
import time

from pyliteflux import Server, Route, Middleware, g, Logger

# 定义认证中间件
class AuthMiddleware(Middleware):
    def process_request(self, request):
        # 检查认证token
        token = request.headers.get("Authorization")
        if not token:
            return {"error": "Unauthorized"}

        # 将认证信息存储在g对象中
        g.user = self.validate_token(token)
        return None  # 继续处理请求

    def process_response(self, request, response):
        # 处理响应
        if isinstance(response, dict):
            response["authenticated"] = hasattr(g, "user")
        return response

    def validate_token(self, token):
        # 实际项目中这里应该验证token
        return {"id": 1, "name": "user1"}

# 定义日志中间件
class LogMiddleware(Middleware):
    def process_request(self, request):
        # 记录请求开始时间
        g.start_time = time.time()
        return None

    def process_response(self, request, response):
        # 计算请求处理时间
        duration = time.time() - g.start_time
        Logger.info(f"Request processed in {duration:.2f}s")
        return response

# 使用中间件
server = Server()
server.middleware_manager.add_middleware(AuthMiddleware())
server.middleware_manager.add_middleware(LogMiddleware())

# 在路由中使用g对象
@Route.register("/user", method="GET")
def get_user(request):
    if hasattr(g, "user"):
        return {
            "message": "User info",
            "user": g.user,
            "request_id": g.request_id  # 每个请求的唯一ID
        }
    return {"error": "User not found"}

server.run()
