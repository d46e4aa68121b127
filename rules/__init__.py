"""Rules and alarms: rule definitions, their evaluation, and the engine that issues commands."""
