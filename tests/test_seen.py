"""SeenKeys: exactly-once key memory at 8 bytes per key."""

from __future__ import annotations

from tap_metronome.seen import SeenKeys


def test_every_key_is_new_once_across_merges():
    seen = SeenKeys()
    keys = [("customer", str(n)) for n in range(10_000)]  # two merges and a rest
    assert all(seen.add(key) for key in keys)
    assert len(seen) == 10_000
    assert not any(seen.add(key) for key in keys)
    assert seen.add(("customer", "10000"))
    assert not seen.add(("customer", "10000"))


def test_clear_forgets_every_key():
    seen = SeenKeys()
    for n in range(5000):
        seen.add(str(n))
    seen.clear()
    assert len(seen) == 0
    assert seen.add("1")
    assert seen.add("4999")
