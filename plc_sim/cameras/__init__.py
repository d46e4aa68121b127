"""Camera health as a video-management system reports it (MQTT)."""
