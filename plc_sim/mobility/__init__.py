"""Mobility: buses on routes with a timetable (a GTFS-Realtime feed) and bike-share stations (a
GBFS feed), both served by ``plc_sim.servers.feeds``."""
