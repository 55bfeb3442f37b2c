# Reproduce paper claims from catalogue/*.yaml. Read README.md; the design is in DESIGN.md.
#   snakemake --cores all                         every paper in config.yaml, default scale (small)
#   snakemake --cores all --config scale=smoke    every paper, CPU-sized
#   snakemake --cores all <paper id>              one paper (a rule per catalogue entry)
import sys

from snakemake.utils import min_version, validate

from workflow.config import config_problems
from workflow.console import print_problems

min_version("9.0")


configfile: "config.yaml"


if config_problems(config):
    print_problems(config_problems(config), what="config")
    sys.exit(1)


validate(config, "schemas/config.schema.yaml")


include: "rules/common.smk"
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


onsuccess:
    print_verdicts(SCALE, SELECTED)
