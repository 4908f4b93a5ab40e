"""The last module a forkserver preloads (pacing.preload): it moves everything imported before it into the
garbage collector's permanent generation. Each forked gateway or helper then never traverses those objects in a
collection (the modules of the suite and the SDKs are most of a fork's objects), and never writes to their pages,
which stay shared with the forkserver instead of being copied into every fork."""

import gc

gc.freeze()
