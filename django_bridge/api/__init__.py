"""The HTTP API: runs, actions and their schemas (mounted by ``django_bridge.urls``)."""
