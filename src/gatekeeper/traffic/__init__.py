"""Built-in traffic backends. Each module exposes ``create(options, context)``."""
