"""A research workbench for watching Chinese A-share stocks during trading hours."""

__version__ = "0.1.0"
