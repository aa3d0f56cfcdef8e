"""The render engine: the mock runtime, stack files, render, diff and graphs. No command-line parsing here."""
