"""Electric-vehicle charge points and ships' shore power, reported over OCPP to the center."""
