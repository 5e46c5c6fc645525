"""tap-metronome: a Singer tap for Metronome billing data."""
