// Binds the traversal source `g` that drivers name in every request; `graph` is the JanusGraph
// instance named in the YAML, which management scripts open with graph.openManagement().
def globals = [:]
globals << [g : graph.traversal()]
