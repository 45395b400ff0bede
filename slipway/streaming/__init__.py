"""The live path: an event stream in, a decision per event, every decision kept.

``log`` (append-only logs with consumer groups: Redis Streams, or SQLite embedded), ``streams``
(one use case's events, dead letters and served log), ``consumer`` (the service that scores each
event), ``served`` (the served-decision record and its drain into ``scoring.served``),
``consistency`` (served features against the offline point-in-time values, per day) and
``replay`` (a landed day played through the live path, as ``make run`` does).
"""
