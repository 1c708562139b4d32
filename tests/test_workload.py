"""The shared workload recorder counts failed, blocked and lost operations the same way everywhere."""

import threading
import time

from common.workload import Workload


class FakeConnection:
    def close(self):
        pass


def test_failed_blocked_and_lost_are_counted():
    def write(connection, n):
        if n == 3:
            raise RuntimeError("lock timeout\nsecond line")
        if n == 5:
            time.sleep(0.15)
        return n

    with Workload(pause_s=0.0) as load:
        load.spawn("write", write, connect=FakeConnection)
        load.wait_for(8, "write")
    report = load.report("write")
    assert report.failed >= 1
    assert report.errors == {"RuntimeError": 1}
    assert report.blocked >= 1  # the attempt that slept past the 100 ms threshold
    acknowledged = load.acknowledged("write")
    assert 3 not in acknowledged and {0, 1, 2, 4, 5} <= set(acknowledged)
    assert load.lost([0, 1, 2, 4]) == [n for n in acknowledged if n not in {0, 1, 2, 4}]


def test_a_failed_attempt_reconnects():
    connections = []

    def connect():
        connections.append(FakeConnection())
        return connections[-1]

    def write(connection, n):
        if n == 0:
            raise ConnectionError("server closed the connection")
        return n

    with Workload(pause_s=0.0) as load:
        load.spawn("write", write, connect=connect)
        load.wait_for(2, "write")
    assert len(connections) == 2, "one connection before the failure, one after"


def test_a_report_from_a_moment_can_count_the_attempt_in_flight_then():
    running, began = threading.Event(), threading.Event()

    def read(connection, n):
        if n == 1:  # in flight when the phase begins, and held up by it
            running.set()
            began.wait(timeout=5)
            time.sleep(0.15)
        return n

    with Workload(pause_s=0.0) as load:
        load.spawn("read", read, connect=FakeConnection)
        running.wait(timeout=5)
        since_s = load.now_s()
        began.set()
        load.wait_for(4, "read")
    assert load.report("read", since_s=since_s).blocked == 0  # it started before the phase
    assert load.report("read", since_s=since_s, in_flight=True).blocked == 1


def test_waiting_for_a_failure_returns_once_one_is_recorded():
    def write(connection, n):
        if n == 2:
            raise TimeoutError("lock wait timeout")
        return n

    with Workload(pause_s=0.0) as load:
        load.spawn("write", write, connect=FakeConnection)
        load.wait_for_failures(1, "write", timeout_s=5)
        assert load.report("write").failed == 1
