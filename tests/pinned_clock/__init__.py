"""The tap with its clock pinned (`cli.main`), for runs on a chosen UTC day."""
