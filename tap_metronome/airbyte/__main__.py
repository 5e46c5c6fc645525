"""`python -m tap_metronome.airbyte` runs `source-metronome`."""

from tap_metronome.airbyte.cli import main

main()
