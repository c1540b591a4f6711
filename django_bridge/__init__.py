"""The Django app (label ``django_bridge``): the projection, admin, commands and checks."""
