"""Analyses of trained networks and tickets: activation statistics, loss landscapes."""
