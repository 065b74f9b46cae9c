"""The client's rate limit: a burst at once, then qps a second, in order, across threads."""

from __future__ import annotations

import threading

import pytest

from modeldeploy.k8s.throttle import Throttle


class Time:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_a_burst_goes_at_once_then_requests_are_spaced_by_the_rate():
    t = Time()
    limit = Throttle(qps=10, burst=3, clock=t.clock, sleep=t.sleep)
    assert [limit.wait() for _ in range(3)] == [0, 0, 0]
    assert [round(limit.wait(), 3) for _ in range(3)] == [0.1, 0.2, 0.3]  # each waits its turn
    assert t.slept == pytest.approx([0.1, 0.2, 0.3])
    assert limit.waited == pytest.approx(0.6)


def test_the_bucket_refills_with_time_up_to_the_burst():
    t = Time()
    limit = Throttle(qps=2, burst=4, clock=t.clock, sleep=t.sleep)
    for _ in range(4):
        limit.wait()
    t.now += 1.0  # two tokens back
    assert [limit.wait() for _ in range(2)] == [0, 0]
    assert limit.wait() == pytest.approx(0.5)
    t.now += 100  # never more than the burst
    assert [limit.wait() for _ in range(4)] == [0, 0, 0, 0]
    assert limit.wait() > 0


def test_no_limit_when_qps_is_zero():
    t = Time()
    limit = Throttle(qps=0, burst=1, clock=t.clock, sleep=t.sleep)
    assert all(limit.wait() == 0 for _ in range(1000)) and not t.slept


def test_threads_share_one_bucket():
    t = Time()
    limit = Throttle(qps=100, burst=10, clock=t.clock, sleep=t.sleep)
    threads = [threading.Thread(target=lambda: [limit.wait() for _ in range(20)]) for _ in range(5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # 100 requests, 10 free: the other 90 waited 1/100 s, 2/100 s ... 90/100 s, whatever the threads' order
    assert sorted(round(s, 4) for s in t.slept) == [round(i / 100, 4) for i in range(1, 91)]
