"""The simulated city's protocol servers: one package per protocol, as in `drivers/`."""
