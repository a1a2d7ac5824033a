"""Event ids: random (version 4) UUIDs, as `uuid.uuid4` makes them, in less than half its time.

`uuid.uuid4` asks the kernel for 16 random bytes per id (a system call) and builds the UUID
through its general constructor. `new_id` takes its 128 bits from a pool filled by one
`os.urandom` call per 256 ids and sets the version and variant bits as `uuid4` does. Every event
gets an id, so this is on the path of every step that emits one.

Safe to share: the pool is a `collections.deque`, whose ``popleft`` hands each value to exactly
one caller, with or without a GIL; threads that find it empty each add a fresh batch. A forked
child starts with an empty pool, so it never hands out ids its parent will also hand out.
"""

from __future__ import annotations

import os
from collections import deque
from uuid import UUID, SafeUUID

POOL = 256  # ids per os.urandom call
# uuid4: version 4 in bits 76-79, the RFC 4122 variant (10) in bits 62-63
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (4 << 76) | (0x8000 << 48)
_new = object.__new__
_setattr = object.__setattr__  # UUID refuses attribute assignment; its own __init__ does this

_pool: deque[int] = deque()


def _fill() -> list[int]:
    raw, from_bytes = os.urandom(16 * POOL), int.from_bytes
    return [from_bytes(raw[i:i + 16], "big") & _CLEAR | _SET for i in range(0, 16 * POOL, 16)]


def new_id() -> UUID:
    """A new random UUID (version 4, RFC 4122 variant): what `uuid.uuid4()` returns."""
    while True:
        try:
            value = _pool.popleft()
            break
        except IndexError:
            _pool.extend(_fill())
    uid = _new(UUID)
    _setattr(uid, "int", value)
    _setattr(uid, "is_safe", SafeUUID.unknown)
    return uid


# A forked child would otherwise inherit the pool and hand out the ids its parent hands out next
# (two processes writing one store would then collide on event ids, the errors store's key).
os.register_at_fork(after_in_child=_pool.clear)

__all__ = ["new_id"]
