"""The domain: types, errors, the clock, tokens, audit records and the data classification.

Nothing here does I/O or imports another part of the core: the safety
functions, the ports and the services all build on these types.
"""
