"""Developer scripts: the demo and the schema generator."""
