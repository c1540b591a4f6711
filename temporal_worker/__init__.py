"""The Temporal side: the typed protocol, the interpreter workflow, the activities, the
projection writes, the client and engine, the worker, and the test environment.

Nothing is imported here on purpose: the workflow sandbox imports ``temporal_worker.workflows``
and the declaration layer (``facade``) imports ``temporal_worker.protocol``; neither may pull
Django in through this package. Other packages import the public modules directly
(``temporal_worker.engine``, ``temporal_worker.worker``, ``temporal_worker.client``, ...).
"""
