"""The restricted reader of official GGHead/EG3D pickles, split by step (see ``gghead_core/_pickle_reader.py``).

Why a package: the reader is one security boundary but five separate jobs (records, opcode scan, storage
decoding, allow-list unpickler, tensor materialisation); one module per job keeps each reviewable on its own.
Import it through ``gghead_core._pickle_reader``, the facade that the rest of the code and the tests use.
"""
