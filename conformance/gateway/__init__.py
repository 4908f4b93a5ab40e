"""The reference gateway: the documented contract served deterministically on 127.0.0.1.

It is the suite's default target and its self-test subject: deviation switches break one rule each so
the self-tests can prove every check fails when it should, and conformant variations prove no check
fails when it should not.
"""
