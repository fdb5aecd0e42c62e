"""The one worker-process model: start, feed, status, statistics, close."""

from __future__ import annotations

import time
import warnings

import pytest

from auralize.workers.worker import Worker
from workers_for_tests import CrashingChild, StubbornChild, SummingChild


class Summing(Worker):
    child = SummingChild
    process_name = "auralize-test-sum"
    stats_fields = ("count",)


def test_items_arrive_in_order_and_final_stats_come_back():
    worker = Summing({}).start()
    assert worker.error is None and worker.info["pid"] != 0
    for k in range(1000):
        assert worker.put(k)
    deadline = time.monotonic() + 10
    while worker.shared["count"] < 1000 and time.monotonic() < deadline:  # shared memory, live
        time.sleep(0.01)
    assert worker.shared["count"] == 1000
    final = worker.close(5.0, "bye")
    assert final == {"total": sum(range(1000)), "count": 1000, "close_args": ["bye"]}
    assert not worker.alive and not worker.put(1)  # closed: nothing more is taken


def test_a_child_that_refuses_says_why_in_one_line():
    worker = Summing({"refuse": True}).start()
    assert worker.error == "no device here (install one)"
    worker.close(2.0)


class Stubborn(Worker):
    child = StubbornChild
    process_name = "auralize-test-stubborn"


def test_a_hung_child_is_terminated_on_close():
    worker = Stubborn({}).start()
    started = time.monotonic()
    with pytest.warns(Warning, match="did not exit"):
        worker.close(timeout_s=0.5)
    assert time.monotonic() - started < 8
    assert not worker._process.is_alive()


class Crashing(Worker):
    child = CrashingChild
    process_name = "auralize-test-crash"


def test_a_crashed_child_is_one_warning_and_no_hang():
    worker = Crashing({}).start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker.put(1)
        deadline = time.monotonic() + 10
        while worker.alive and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not worker.alive
        assert worker.close(2.0) == {}
    messages = [str(w.message) for w in caught]
    assert sum("exited unexpectedly" in m for m in messages) == 1, messages


def test_a_child_is_named_by_its_class_and_must_be_importable():
    """The spawned process imports the child by its module path: a class defined where it
    cannot be imported (inside a function, or no class at all) is refused at start."""

    class LocalChild(SummingChild):
        pass

    for child in (LocalChild, "workers_for_tests:SummingChild"):
        worker = type("Misnamed", (Worker,), {"child": child})({})
        with pytest.raises(TypeError, match="module level|WorkerChild subclass"):
            worker.start()
