// Binds the traversal source `g` that drivers name in every request (Neptune binds `g` too).
def globals = [:]
globals << [g : traversal().withEmbedded(graph)]
