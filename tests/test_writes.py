"""core/writes.py: the window's disk writes, in a thread of their own, in order; a newer write
of a key replaces one not started; a failure is reported; the session writes through it."""

import threading

from tfesi_desktop.core.errors import TfesiError
from tfesi_desktop.core.writes import OrderedWrites


def test_writes_run_in_order_in_their_own_thread_and_the_newest_of_a_key_wins():
    done, threads, failures = [], set(), []
    gate = threading.Event()
    w = OrderedWrites(failures.append)

    def write(name):
        def run():
            gate.wait(5)
            threads.add(threading.current_thread().name)
            done.append(name)
        return run

    w.submit("a", write("a1"))  # started at once, held by the gate
    w.submit("b", write("b1"))
    w.submit("c", write("c1"))
    w.submit("b", write("b2"))  # b1 has not started: replaced, in its place
    assert w.pending()
    gate.set()
    assert w.wait(5) and not w.pending()
    assert done == ["a1", "b2", "c1"]
    assert threads == {"tfesi-writes"} and not failures


def test_a_failed_write_is_reported_and_the_next_ones_still_run():
    failures, done = [], []
    w = OrderedWrites(failures.append)

    def fail():
        raise TfesiError("the disk is full")

    w.submit(1, fail)
    w.submit(2, lambda: done.append(2))
    assert w.wait(5)
    assert [str(e) for e in failures] == ["the disk is full"] and done == [2]


def test_closed_the_thread_ends_and_a_later_write_starts_another():
    done = []
    w = OrderedWrites(lambda e: None)
    w.submit(1, lambda: done.append(threading.current_thread()))
    assert w.close(5)
    first = done[0]
    first.join(5)
    assert not first.is_alive()  # a closed window leaves no thread behind
    w.submit(2, lambda: done.append(threading.current_thread()))
    assert w.wait(5) and len(done) == 2 and done[1] is not first


def test_the_session_writes_through_them_and_close_waits(tmp_path):
    from tfesi_desktop.core.commands import open_study
    from tfesi_desktop.core.paths import demo_study
    from tfesi_desktop.core.session import Session, StateStore

    store = StateStore(tmp_path / "state")
    s = Session(store)
    s.writes = OrderedWrites(s.save_failed)
    gate, seen = threading.Event(), []
    real = store.write

    def slow(uid, document):
        gate.wait(5)
        seen.append(threading.current_thread().name)
        real(uid, document)

    store.write = slow
    s.open(open_study(demo_study()).scan)
    s.set_level("C6")
    assert not seen  # not written in the caller's thread
    threading.Timer(0.2, gate.set).start()
    s.close()  # waits for the writes
    assert seen and set(seen) == {"tfesi-writes"}
    s2 = Session(StateStore(tmp_path / "state"))
    s2.open(open_study(demo_study()).scan)
    assert s2.selection.level == "C6"  # the write was done when close returned
    s2.close()
