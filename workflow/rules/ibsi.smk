# IBSI-1: an IBSI tag for every radiomics feature column (a sidecar of each feature table), and
# hccrad's PyRadiomics held against the IBSI-1 phantoms' reference values (resources/ibsi/).


include: "ibsi_common.smk"


# Every radiomics feature table of a run: the cohort's (reference masks) and the segmentation
# network's (predicted masks).
rule ibsi_feature_tags:
    input:
        features="results/{cohort}/{table}.parquet",
        params=radiomics_params,
    output:
        "results/{cohort}/{table}_ibsi_tags.tsv",
    log:
        "logs/{cohort}/ibsi_feature_tags/{table}.log",
    benchmark:
        "results/benchmarks/ibsi_feature_tags/{cohort}/ibsi_feature_tags/{table}.tsv"
    wildcard_constraints:
        table="radiomics/features|segment/radiomics_predicted",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        radiomics=radiomics_section,
    script:
        "../scripts/ibsi_feature_tags.py"


# Not a default target: the phantoms and reference values are not shipped (the CT phantom is
# CC BY-NC); set ibsi.data to their folder and ask for results/ibsi/conformance.tsv.
rule ibsi_conformance:
    input:
        data=ibsi_data,
        params=resolve(config["radiomics"]["params"]["ct"]),
        configurations=resolve("resources/ibsi/configurations.yaml"),
        tags=resolve("resources/ibsi/pyradiomics_ibsi_tags.tsv"),
    output:
        table="results/ibsi/conformance.tsv",
        page="results/ibsi/conformance.md",
    log:
        "logs/ibsi/ibsi_conformance.log",
    benchmark:
        "results/benchmarks/ibsi_conformance/ibsi/ibsi_conformance.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../scripts/ibsi_conformance.py"
