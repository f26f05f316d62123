"""The two methods and their parts: losses (:mod:`.losses`), schedules (:mod:`.schedule`), texture
levels of detail (:mod:`.lod`), the temporal prior (:mod:`.temporal`), metrics (:mod:`.metrics`), the
optimisation loop both methods share (:mod:`.loop`), SMVR (:mod:`.smvr`) and DMVR (:mod:`.dmvr`).
Depends on rendering, geometry and the model, never on the data layout."""
