"""Rendering: the Mitsuba variant (:mod:`.backend`), the renderer with its two image generators,
ray tracing (:mod:`.renderer`) and the hard-raster baseline (:mod:`.raster`), colour encodings and
transforms (:mod:`.colour`), UV textures (:mod:`.texture`, :mod:`.uvtexture`), SH lighting
(:mod:`.lighting`) and colour maps back-projected from images (:mod:`.backproject`).
Depends on :mod:`handlib.geometry` and :mod:`handlib.model`."""
