"""Console page handlers, one module per area; thin: parse the form, call a use case, render."""
