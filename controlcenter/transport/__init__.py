"""Edge collectors on NATS JetStream: subjects, the sample codec, the edge's publisher and
command responder, the center's ingest and the driver that reaches a device through its edge.

``nats`` (nats-py) is imported only in this package: its API is the transport's to absorb.
"""
