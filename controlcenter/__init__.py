"""City operations control center: acquisition, historian, rules, alarms and HMI for utilities."""
