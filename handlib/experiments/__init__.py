"""The paper companion's helpers, used by the notebooks and the book only (the library and the CLI
never import them): synthetic experiment cases (:mod:`.study`), result tables and figures
(:mod:`.report`), quick renders and overlays (:mod:`.preview`), the notebook runner (:mod:`.book`).
They need the ``book`` extra (pandas, pyyaml, papermill)."""
