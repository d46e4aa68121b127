"""Traffic detectors on road segments and a road-pricing zone's entry counts (MQTT uplinks)."""
