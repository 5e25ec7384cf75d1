"""The Panel dashboard: Viewer components over the control plane and the store's read helpers.

The components hold no business logic and no SQL: commands go through :class:`workbench.control.Service`, reads
through ``workbench.store`` functions on a short read-only connection per refresh. ``notebooks/dashboard.ipynb`` and
``workbench dashboard`` serve the same :func:`dashboard_session`.
"""

from workbench.dashboard.app import Dashboard, DashboardContext, dashboard_session, notebook_settings, serve_dashboard

__all__ = ["Dashboard", "DashboardContext", "dashboard_session", "notebook_settings", "serve_dashboard"]
