"""A worker's environment and identity (``service.worker``); the processes
themselves are tested in ``test_service_supervisor``."""

from __future__ import annotations

import json

from twisted.trial import unittest

from pyliteflux import Server
from pyliteflux.config import config_from_env
from pyliteflux.service.worker import WORKER_ENV, worker_environment

ENV = {"PYLITEFLUX_WORKER_ID": "1",
       "PYLITEFLUX_WORKER_FDS": json.dumps([["http", "tcp:0", 4, "INET"],
                                            ["tcp", "tcp:0", 5, "INET"],
                                            ["http", "unix:/s", 6, "UNIX"]]),
       "PYLITEFLUX_WORKER_CONTROL": "3", "PYLITEFLUX_WORKER_NODE": "host-9",
       "PYLITEFLUX_WORKER_PARENT": "9", "PYLITEFLUX_WORKER_LEDGER": "7:2"}


class WorkerEnvironmentTests(unittest.TestCase):
    def test_not_a_worker(self) -> None:
        self.assertIsNone(worker_environment({}))
        self.assertIsNone(Server().worker_id)

    def test_parsed(self) -> None:
        env = worker_environment(ENV)
        assert env is not None
        self.assertEqual((env.worker_id, env.control_fd, env.node_id, env.parent, env.ledger),
                         (1, 3, "host-9", 9, (7, 2)))
        self.assertEqual(env.endpoints, {"http": ["tcp:0", "unix:/s"], "tcp": ["tcp:0"]})
        self.assertEqual(env.adopted, {"http": [(4, "INET"), (6, "UNIX")],
                                       "tcp": [(5, "INET")]})

    def test_bad_environment(self) -> None:
        with self.assertRaises(ValueError) as caught:
            worker_environment({**ENV, "PYLITEFLUX_WORKER_FDS": "[1]"})
        self.assertIn("bad worker environment", str(caught.exception))
        with self.assertRaises(ValueError):
            worker_environment({**ENV, "PYLITEFLUX_WORKER_LEDGER": "7"})

    def test_worker_variables_are_not_config_keys(self) -> None:
        values, unknown = config_from_env({**ENV, "PYLITEFLUX_WORKERS": "3"})
        self.assertEqual((values, unknown), ({"workers": 3}, []))
        self.assertEqual(set(ENV), set(WORKER_ENV))

    def test_a_worker_service_adopts_instead_of_listening(self) -> None:
        from pyliteflux.service.adopted import AdoptedListenerService
        from pyliteflux.service.listeners import ListenerService

        env = worker_environment(ENV)
        assert env is not None
        service = Server().make_service(endpoints={"http": ["tcp:0", "tcp:1"], "tcp": ["tcp:0"]},
                                        adopted={"http": [(4, "INET")], "tcp": [(5, "INET")]})
        kinds = [(type(s), getattr(s, "fd", None)) for s in service.listeners]
        self.assertEqual(kinds, [(AdoptedListenerService, 4), (ListenerService, None),
                                 (AdoptedListenerService, 5)])
