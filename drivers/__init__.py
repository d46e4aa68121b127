"""Protocol drivers: one sub-package per protocol behind the interface in ``drivers.base``."""
