"""The bundled demo model: our own head template, a procedural head family on it, and the script that trains a
small GGHead-architecture generator to reproduce that family.

Nothing here is needed to run official checkpoints; it exists so that a fresh clone has a model to show.
Modules:

* :mod:`gghead_core.demo.template` - the procedural closed head mesh with its UV layout (``assets/``).
* :mod:`gghead_core.demo.uv_template` - OBJ parsing and the UV buffers of spec 3.4 for any template mesh.
* :mod:`gghead_core.demo.heads` - stylized heads as per-texel Gaussian attributes, driven by a few parameters.
* :mod:`gghead_core.demo.train_demo` - regression training of the demo generator (``checkpoints/demo.safetensors``).
"""
