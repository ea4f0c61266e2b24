"""The desktop viewer (DearPyGui): ``python main.py [--ckpt FILE]`` opens it; see :mod:`app.viewer`.

Nothing in ``gghead_core`` imports this package; the viewer is a thin front end over the same calls as the CLI.
"""
