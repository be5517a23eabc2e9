# How far to trust a prediction (issue 33): each patient's conformal prediction set and
# Venn-Abers interval, calibrated on out-of-fold scores of the training split only, with their
# coverage on the internal-test and external patients; and the out-of-domain reference (raw
# acquisition, tumour size, robust radiomic features of the training patients) with every
# patient's flags. The model bundle (issue 33) carries conformal.json and domain_reference.json.


include: "trust_common.smk"


# The raw acquisition of every prepared patient (preparation records it beside exclusion.tsv).
rule raw_geometry:
    input:
        per_patient("results/{cohort}/prepared/batch_{batch}"),
    output:
        RAW_GEOMETRY,
    log:
        "logs/{cohort}/raw_geometry.log",
    benchmark:
        "results/benchmarks/raw_geometry/{cohort}/raw_geometry.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/raw_geometry.py"


rule conformal_calibration:
    input:
        unpack(imaging_feature_inputs),
        sheet=f"results/{RESPONSE_COHORT}/sheet.tsv",
    output:
        conformal=f"{MODELS}/conformal.json",
        held_out=f"{MODELS}/held_out_scores.tsv",
    log:
        f"logs/{RESPONSE_COHORT}/conformal_calibration/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/conformal_calibration/{RESPONSE_COHORT}_{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=3000,
        # fit_models' work once per fold.
        runtime=lambda wildcards: 20 * config["conformal"]["folds"],
    params:
        models=config["models"],
        seed=config["seed"],
        conformal=config["conformal"],
    script:
        "../scripts/conformal_calibration.py"


rule conformal_coverage:
    input:
        conformal=f"{MODELS}/conformal.json",
        predictions=f"{MODELS}/predictions.tsv",
    output:
        coverage=report(
            f"{EVALUATION}/conformal_coverage.tsv",
            caption="../report/conformal_coverage.rst",
            category="Response models",
            subcategory="{endpoint}",
            labels={"endpoint": "{endpoint}", "table": "conformal coverage"},
        ),
        intervals=f"{EVALUATION}/conformal_intervals.tsv",
    log:
        f"logs/{RESPONSE_COHORT}/conformal_coverage/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/conformal_coverage/{RESPONSE_COHORT}/conformal_coverage/{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/conformal_coverage.py"


rule domain_reference:
    input:
        unpack(domain_inputs),
    output:
        reference=f"{MODELS}/domain_reference.json",
        flags=f"{EVALUATION}/domain_flags.tsv",
    log:
        f"logs/{RESPONSE_COHORT}/domain_reference/{{endpoint}}.log",
    benchmark:
        f"results/benchmarks/domain_reference/{RESPONSE_COHORT}/domain_reference/{{endpoint}}.tsv"
    wildcard_constraints:
        endpoint=ENDPOINT_PATTERN,
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        domain=config["domain"],
        seed=config["seed"],
    script:
        "../scripts/domain_reference.py"
