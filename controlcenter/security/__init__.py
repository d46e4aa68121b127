"""Users, roles and the checks of who may do what."""
