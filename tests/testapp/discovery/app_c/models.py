"""An app without a workflows or automations module: discovery skips it."""
