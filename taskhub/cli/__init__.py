"""The `taskhub` command line: one small module per command group, dispatched from `main`."""
