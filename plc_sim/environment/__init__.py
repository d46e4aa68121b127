"""Air-quality stations and river gauges with rain, an ozone episode and a flood (MQTT uplinks)."""
