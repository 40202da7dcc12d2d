"""The web server: the OAuth callback, ``/healthz`` and ``/metrics``."""
