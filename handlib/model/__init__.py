"""The hand model: MANO-format model files (:mod:`.mano_io`), the smplx-based layer from parameters
to vertices and joints (:mod:`.hand`), joint orders (:mod:`.skeleton`), joint axes and poses from
angles (:mod:`.anatomy`), named gestures (:mod:`.gestures`) and the open hand asset (:mod:`.assets`).
Imports nothing else from handlib."""
