# dft2mlip: high-convergence DFT labels -> MACE potential with adaptive E/F/S loss weighting ->
# stress validation (elastic constants, deformation MD checked against DFT) -> report.
from snakemake.utils import min_version, validate

min_version("9.0")


# The embedded example is read only when no --configfile is given: a user's file stands alone
# (the schema fills in its defaults), never merged with the Si example's runs or pseudopotentials.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/structures.smk"
include: "workflow/rules/convergence.smk"
include: "workflow/rules/dft.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/md.smk"
include: "workflow/rules/study.smk"
include: "workflow/rules/active_learning.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/provenance.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
