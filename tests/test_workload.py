"""The shared workload recorder counts failed, blocked and lost operations the same way everywhere."""

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
