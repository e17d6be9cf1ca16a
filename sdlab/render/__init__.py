"""Views over records: text tables, graphviz diagrams, matplotlib figures. No model code here."""
