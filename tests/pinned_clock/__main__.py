"""Allow `python -m tests.pinned_clock` (`TAP_TESTS_EXEC=1`)."""

from tests.pinned_clock.cli import main

main()
