"""The composition root: builds and runs the center, the demo and the simulated city's process."""
