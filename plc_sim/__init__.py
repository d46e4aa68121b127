"""The simulated city: clock, physics and protocol servers standing in for the field devices."""
