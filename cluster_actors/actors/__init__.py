"""Thin Ray actor shells, one module per component. Each owns a pure core,
turns remote calls into core inputs, drives its timers and carries out the
core's outputs."""
