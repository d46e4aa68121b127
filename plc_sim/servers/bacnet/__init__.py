"""BACnet/IP device server of the simulated city (bacpypes3)."""
