"""The web console: ``jobscheduler ui`` (and ``jobscheduler local``) serve it on 127.0.0.1.

``server.py`` serves the page and its files and forwards ``/api/...`` to the
jobscheduler API (signed with SigV4 when the API is in AWS); ``static/`` is
the page; ``static/vendor/`` holds the front-end libraries copied from
``node_modules`` by ``vendor.py``.
"""
