"""The seed's request-context example ("全局上下文使用"), with stand-ins for
the database and cache it assumes ("假设的数据库连接").

Run: ``python examples/context.py`` then ``curl 127.0.0.1:8000/data`` and
``curl 127.0.0.1:8000/async``. Also: ``twistd -n pyliteflux --app examples.context:server``.
"""
import uuid

from pyliteflux import Server, Route, Middleware, g, Logger


class Database:
    """Stand-in for the seed's assumed database connection."""

    closed = 0

    def query(self, sql):
        return [{"id": 1, "name": "user1"}]

    def close(self):
        Database.closed += 1


class Cache:
    """Stand-in for the seed's assumed cache connection."""

    closed = 0

    def get(self, key):
        return {"users": "cached"}.get(key)

    def close(self):
        Cache.closed += 1


server = Server()

# 在中间件中设置数据
class DataMiddleware(Middleware):
    def process_request(self, request):
        g.db = Database()  # 假设的数据库连接
        g.cache = Cache()  # 假设的缓存连接
        return None

    def process_response(self, request, response):
        # 清理资源
        if hasattr(g, "db"):
            g.db.close()
        if hasattr(g, "cache"):
            g.cache.close()
        return response

server.middleware_manager.add_middleware(DataMiddleware())

# 在路由中使用g对象
@Route.register("/data", method="GET")
def get_data(request):
    # 使用g对象中的资源
    data = g.db.query("SELECT * FROM users")
    cached_data = g.cache.get("users")

    return {
        "data": data,
        "cached": cached_data,
        "request_id": g.request_id
    }

# 在后台任务中使用g对象
@Route.register("/async", method="GET")
def async_task(request):
    def background_job():
        # 注意:后台任务有自己的g对象实例
        g.task_id = uuid.uuid4()
        Logger.info(f"Background task {g.task_id} started")

    request.bg.add(background_job)
    return {"message": "Task scheduled"}

server.run()
