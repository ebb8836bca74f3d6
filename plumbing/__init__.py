"""Process plumbing the edge and the services both need (STYLE rules 2 and 11): JSON logs and failing fast.

It depends on nothing but the standard library and structlog, so the edge's install stays free of the
server's dependencies, and neither side imports the other.
"""
