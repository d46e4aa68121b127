"""The `controlcenter` command line: one module per command group."""
