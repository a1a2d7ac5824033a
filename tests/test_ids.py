"""`railgraph.ids.new_id`: what `uuid.uuid4` returns, from a pool; never the same id twice,
not across threads, not across a fork."""

from __future__ import annotations

import os
import threading
import uuid

from railgraph import ids
from railgraph.ids import new_id


def test_ids_are_version_4_rfc_4122_uuids_like_uuid4s() -> None:
    """Every id, across pool refills, is a plain UUID of version 4 and the RFC 4122 variant, equal to
    its own text and as safe as uuid4's."""
    for _ in range(3 * ids.POOL):  # across refills
        uid = new_id()
        assert type(uid) is uuid.UUID
        assert uid.version == 4 and uid.variant == uuid.RFC_4122
        assert uuid.UUID(str(uid)) == uid and hash(uid) == hash(uuid.UUID(str(uid)))
        assert uid.is_safe is uuid.uuid4().is_safe


def test_the_random_bits_vary_in_every_position() -> None:
    """The 122 random bits are random: over 2,000 ids each bit outside version and variant is seen as 0 and 1."""
    fixed = (0xF000 << 64) | (0xC000 << 48)
    ones, zeros = 0, 0
    for _ in range(2000):
        value = new_id().int
        ones |= value
        zeros |= ~value & ((1 << 128) - 1)
    assert ones & zeros == ((1 << 128) - 1) & ~fixed


def test_threads_never_get_the_same_id() -> None:
    """8 threads drawing 5,000 ids each, through many refills at once, never get the same one."""
    got: list[list[uuid.UUID]] = [[] for _ in range(8)]

    def take(out: list[uuid.UUID]) -> None:
        for _ in range(5000):
            out.append(new_id())

    threads = [threading.Thread(target=take, args=(out,)) for out in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [u for out in got for u in out]
    assert len(every) == 40_000 and len(set(every)) == 40_000


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    """A child forked with a half-used pool and its parent hand out different ids."""
    new_id()  # the pool now holds ids the parent will hand out next
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write 100 ids, exit without running pytest's teardown
        try:
            os.write(write, "".join(new_id().hex for _ in range(100)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    child = {text[i:i + 32] for i in range(0, len(text), 32)}
    parent = {new_id().hex for _ in range(100)}
    assert len(child) == 100 and not child & parent
