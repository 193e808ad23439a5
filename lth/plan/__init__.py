"""From a validated workflow config to the content-addressed runs it needs.

Every run folder is named by a short hash of everything its result depends on (its own
settings and its upstream runs' hashes, plus `cache_version`), so experiments that share a
dense recipe or a mask chain share those artifacts, a changed setting writes a new folder, and
switching back finds the old results. The IMP chain's own masked training at each level is an
ordinary sparse run: the vanilla variant hashes to the same folder and is not trained twice.
Data enters a hash by what it is (`lth.data.identity`), never by where it lives, and how a job
runs (threads, device, which rewind points a dense run keeps) never enters one.

- config: reading and checking an experiment's config
- identity: what a run's hash covers
- graph: `Plan`, the runs of one experiment (or of several, merged) and how they feed each other
- paths: where each artifact of the plan lives
- analyses: the jobs of the `analysis` section (lth/analysis/registry.py names the analyses)
- arguments: what each workflow rule passes to `lth`
"""
