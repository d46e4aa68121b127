"""Simulated street lighting: districts, cabinets and their lamps."""
