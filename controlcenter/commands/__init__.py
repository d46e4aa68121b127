"""The command pipeline: every write to the field is checked, written, read back and journaled."""
