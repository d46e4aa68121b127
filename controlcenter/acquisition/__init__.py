"""Acquisition: the scan engine that polls and subscribes to field devices through the drivers."""
