"""Open-data feeds over HTTP: GTFS-Realtime (protobuf) for buses, GBFS 3.0 (JSON) for bike share."""
