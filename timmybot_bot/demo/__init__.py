"""The offline demo OAuth provider, loaded only with ``--demo-provider``."""
