"""Allow `python -m tap_metronome`."""

from tap_metronome.cli import main

main()
