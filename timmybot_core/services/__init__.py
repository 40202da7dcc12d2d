"""Services: the security layer's use cases, built on the ports."""
