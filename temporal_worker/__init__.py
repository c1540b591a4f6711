"""The Temporal side: interpreter workflow, activities, worker bootstrap and client.

Nothing is imported here on purpose: the workflow sandbox imports
``temporal_worker.interpreter`` and must not pull Django in through this package.
"""
