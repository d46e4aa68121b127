"""Alarm management to ISA-18.2 / IEC 62682: conditions, states, notifications, performance."""
