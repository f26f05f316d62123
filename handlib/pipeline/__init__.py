"""From a dataset on disk to a refined one: one unit of refinement with its input checks and
keep-the-input guard (:mod:`.refine`), and a whole split on Dask with its ledger (:mod:`.dataset`).
The command line (:mod:`handlib.cli`) sits on top."""
