"""The REST API (``/api/v1``), its OpenAPI 3.1 document and local docs page, for integrators.

A face on the center's services, like the HMI and the command line: it parses, calls and
renders, and never holds a second copy of a check. Every request is authenticated by an API
token (``controlcenter.security.tokens``) and authorised by ``controlcenter.permissions`` (the
token's user's role, within its scope); errors are RFC 9457 problem documents.
"""
