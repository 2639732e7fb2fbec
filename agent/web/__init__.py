"""The operator dashboard: pages, a JSON API and server-sent events over a journal (and the
live runner's status when ``updown run`` serves it), with one action, the kill switch.

* ``data``: the figures every page and answer shows (read-only journal reads);
* ``svg``: charts drawn on the server (no script, no CDN);
* ``pages``: the HTML;
* ``app``: the Starlette application, access rules, events, the kill switch;
* ``server``: uvicorn inside the caller's event loop.
"""
