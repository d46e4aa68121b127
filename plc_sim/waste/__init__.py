"""Waste containers with ultrasonic fill-level sensors (LoRaWAN-style JSON uplinks over MQTT)."""
