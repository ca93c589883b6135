"""The DAG's ids, paths and per-stage selections, known from the config alone.

``workflow/rules/common.smk`` keeps thin input functions with the same names that call these
modules (and unpack wildcards); here they are plain functions of the config (and explicit
arguments) returning plain values, unit-tested without Snakemake (tests/test_dag.py).

Read bottom-up (each module imports only the ones above it in this list):

- :mod:`.paths`: where each stage's files live under the results folder
- :mod:`.engine`: the DFT engine, its physics config, the convergence study and relaxation flags
- :mod:`.training`: training runs, seeds, grid points, tuning, the study's models
- :mod:`.structures`: the material, structure ids of every set, the relaxed reference's inputs
- :mod:`.labels`: the DFT label paths of the training, elastic and MD-snapshot sets
- :mod:`.imports`: the dataset.import sources
- :mod:`.heldout`: the held-out stress benchmark (validation.heldout)
- :mod:`.active_learning`: generations, lineages and committee of active learning
- :mod:`.targets`: what the study, report, provenance and ``rule all`` gather
"""
