"""The admin web UI at ``/admin``: a page that logs in with ``admin.password`` and then shows
the cluster as the server API sees it, refreshing by itself.

Modules: :mod:`.routes` (the page, its assets, login, logout and the calls, each checked
against the session), :mod:`.cookie` (the signed session cookie), and ``static/`` (the page:
HTML, CSS and JavaScript, no build step, nothing from a CDN).

The UI acts only through the server API's methods, run in-process (``info``, ``channels``,
``presence``, ``history``, ``publish``, ``disconnect``, ...), so it shows and reaches every
node the API does. It sits above ``api/`` in the layers and below ``server/``: ``roomcast
serve`` mounts it when ``admin.enabled``, and an app embedding a Hub may too::

    app.include_router(admin_router(hub))
"""

from roomcast.admin.routes import ADMIN_PATH, admin_router

__all__ = ["ADMIN_PATH", "admin_router"]
