"""``timmybot-admin``: the operator's command line over the application layer."""
