# Reproduce paper claims from catalogue/*.yaml. Read README.md; the reference is in docs/.
#   snakemake --cores all                         every paper in config.yaml, default scale (small)
#   snakemake --cores all --config scale=smoke    every paper, CPU-sized
#   snakemake --cores all <paper id>              one paper (a rule per catalogue entry)
# What to reproduce is config.yaml; how to run it (device, fork server, checkpoints, SLURM groups)
# are run-time settings with defaults in schemas/config.schema.yaml (docs/running.md).
import sys

from snakemake.utils import min_version, validate

from workflow.console import print_problems
from workflow.runconfig import config_problems

min_version("9.0")


configfile: "config.yaml"


if config_problems(config):
    print_problems(config_problems(config), what="config")
    sys.exit(1)


validate(config, "schemas/config.schema.yaml")


include: "rules/launch.smk"      # how jobs are started: fork server, SLURM groups; the run's hooks
include: "rules/common.smk"      # the catalogue, its jobs, input functions and targets
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/probe.smk"
include: "rules/track.smk"
include: "rules/judge.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    localrule: True
    input:
        all_targets(),
