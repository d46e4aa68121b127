"""Simulated water network: plant, reservoirs, booster stations and metering areas."""
