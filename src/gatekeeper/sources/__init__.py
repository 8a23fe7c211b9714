"""Built-in metric sources. Each module exposes ``create(name, options, context)``."""
