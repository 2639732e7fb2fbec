"""The trading graph: state, context, nodes and the compiled graph."""
