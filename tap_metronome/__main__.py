"""Allow `python -m tap_metronome`."""

from tap_metronome.tap import TapMetronome

TapMetronome.cli()
