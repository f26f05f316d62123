"""Data: InterHand2.6M's layout read and written (:mod:`.interhand`), synthetic captures in that layout
with their ground truth (:mod:`.synth`), and the checks on names from a dataset that become paths
(:mod:`.names`). Depends on rendering, geometry and the model, never on the methods."""
