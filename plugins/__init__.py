"""Built-in railgraph plugins: one small module each, registered through the ``railgraph``
entry-point group exactly like a third-party plugin. None imports another."""
