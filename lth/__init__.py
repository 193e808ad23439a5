"""lth: draw lottery tickets (IMP/OMP) and spend them better (ToST tweaks)."""

__version__ = "0.1.0"
