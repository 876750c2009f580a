"""Background jobs (SPEC §8): after the response, thread pool, fresh g, failures, shutdown."""

import threading

import treq
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from pyliteflux import Router, Server, g
from pyliteflux.jobs import JobRunner
from pyliteflux.testing import TestClient, serve


class CapturedJobTests(TestCase):
    def setUp(self):
        self.server = Server(router=Router(), info=False)
        self.client = TestClient(self.server, jobs="capture")

    async def test_jobs_queued_with_args_and_kwargs(self):
        calls = []

        @self.server.route("/task")
        def async_task(request):
            def background_job(user_id, task_type="default"):
                calls.append((user_id, task_type))

            user_id = request.query_params.get("user_id", "0")
            request.bg.add(background_job, user_id, task_type="important")
            return {"message": "Task scheduled"}

        r = await self.client.get("/task?user_id=9")
        self.assertEqual(r.json(), {"message": "Task scheduled"})
        self.assertEqual(calls, [])  # nothing ran before the test chose to
        self.assertEqual(len(self.client.jobs.captured), 1)
        await self.client.jobs.run_all()
        self.assertEqual(calls, [("9", "important")])

    async def test_jobs_get_a_fresh_g(self):
        seen = []

        @self.server.route("/g")
        def handler(request):
            g.secret = "request"

            def job():
                seen.append((hasattr(g, "secret"), hasattr(g, "request_id")))
                g.task_id = 1

            request.bg.add(job)
            return {"ok": True}

        await self.client.get("/g")
        await self.client.jobs.run_all()
        self.assertEqual(seen, [(False, False)])


class ThreadPoolTests(TestCase):
    """Real threads, real loopback sockets."""

    async def test_job_runs_after_response_in_a_thread_and_can_push(self):
        server = Server(router=Router(), info=False, tcp_keep_alive=True)
        release = threading.Event()
        finished = defer.Deferred()
        thread_names = []

        @server.route("/hello")
        def hello(request):
            target = request.query_params.get("client_id")

            def heavy_task():
                thread_names.append(threading.current_thread().name)
                release.wait(10)
                future = server.push_message("Hello via HTTP GET!", target)
                reactor.callFromThread(finished.callback, future)

            request.bg.add(heavy_task)
            return {"message": "Hello via HTTP GET!", "target_client": target}

        @server.route("subscribe", protocol="tcp")
        def subscribe(request):
            return {"client_id": request.client_id}

        running = await serve(server)
        self.addCleanup(running.stop)
        from tests.tcp_client import LineClient

        tcp = await LineClient.connect(running.tcp_port)
        self.addCleanup(tcp.close)
        client_id = (await tcp.request({"command": "subscribe"}))["client_id"]
        response = await treq.get(running.url(f"/hello?client_id={client_id}"), persistent=False)
        body = await response.json()
        # the client has its response while the job is still blocked
        self.assertEqual(body["target_client"], client_id)
        self.assertEqual(server.jobs.stats.queued + server.jobs.stats.running, 1)
        release.set()
        future = await finished
        push = await tcp.next_line()
        self.assertEqual(push, {"type": "push", "data": "Hello via HTTP GET!"})
        self.assertEqual(future.result(timeout=5), 1)
        self.assertIn("pyliteflux-jobs", thread_names[0])
        await server.jobs.wait_idle()
        self.assertEqual(server.jobs.stats.done, 1)

    async def test_failing_job_is_logged_and_isolated(self):
        runner = JobRunner(reactor, threads=2)
        runner.start()
        self.addCleanup(runner.stop, 1)

        def bad():
            raise ValueError("job broke")

        ok = runner.submit(lambda: 42)
        bad_d = runner.submit(bad)
        await defer.gatherResults([ok, bad_d])
        self.assertEqual(runner.stats.failed, 1)
        self.assertEqual(runner.stats.done, 1)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    async def test_async_job_runs_on_reactor(self):
        runner = JobRunner(reactor, threads=1)
        runner.start()
        self.addCleanup(runner.stop, 1)
        seen = []

        async def job(x):
            await task.deferLater(reactor, 0, lambda: None)
            seen.append((x, threading.current_thread() is threading.main_thread()))

        await runner.submit(job, 3)
        self.assertEqual(seen, [(3, True)])

    async def test_stop_waits_for_jobs_then_refuses_new_ones(self):
        runner = JobRunner(reactor, threads=2)
        runner.start()
        gate = threading.Event()
        done = []
        runner.submit(lambda: (gate.wait(10), done.append(1)))
        stopping = runner.stop(timeout=10)
        self.assertFalse(stopping.called)
        reactor.callLater(0.01, gate.set)
        abandoned = await stopping
        self.assertEqual((abandoned, done), ([], [1]))
        from pyliteflux.core.errors import ServiceUnavailable

        self.assertRaises(ServiceUnavailable, runner.check_capacity)

    async def test_stop_is_bounded_and_reports_abandoned(self):
        runner = JobRunner(reactor, threads=1)
        runner.start()
        gate = threading.Event()
        self.addCleanup(gate.set)

        def stuck_job():
            gate.wait(10)

        runner.submit(stuck_job)
        abandoned = await runner.stop(timeout=0.05)
        self.assertEqual(len(abandoned), 1)
        self.assertIn("stuck_job", abandoned[0])

    async def test_full_queue_is_503(self):
        server = Server(router=Router(), info=False, bg_max_queued=1)
        client = TestClient(server, jobs="real")
        server.jobs.stats.queued = 1  # pretend one job is waiting for a thread

        @server.route("/q")
        def q(request):
            request.bg.add(lambda: None)
            return "queued"

        r = await client.get("/q")
        self.assertEqual(r.code, 503)
        self.assertEqual(server.jobs.stats.rejected, 1)
