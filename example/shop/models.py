# The example keeps its state in the workflows' Context; runs live in django_bridge.WorkflowRun.
