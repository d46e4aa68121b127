"""Simulated district heating: the heat plant, the network and its substations."""
