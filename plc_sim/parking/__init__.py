"""Parking garages and on-street zones reporting occupancy (MQTT uplinks)."""
