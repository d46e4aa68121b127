"""Simulated buildings: zones, HVAC and their schedules, served over BACnet/IP."""
