"""OPC UA device server of the simulated city (asyncua)."""
