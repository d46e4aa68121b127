"""Sensor networks delivering JSON uplinks to an MQTT broker, as LoRaWAN and NB-IoT do."""
