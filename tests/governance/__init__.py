"""Tests, grouped by the layer of components/ (or the tool) they check."""
