"""Geometry: calibrated cameras and projection (:mod:`.cameras`), the closed render surface of a
hand model with its corner UVs and normals (:mod:`.surface`). Depends on :mod:`handlib.model` only."""
