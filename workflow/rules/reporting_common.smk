# Helpers of the reporting rules (reporting.smk): paths and the checklist's inputs.

CHECKLIST = "results/reporting/tripod_ai_checklist"


def checklist_inputs():
    """Every other default target, so that the checklist resolves against a finished run."""
    # A stage whose targets go to `rule all` without all_targets() must be added here too.
    return (
        all_targets()
        + ibsi_targets()
        + bundle_targets()
        + [RULE_GRAPH, SOFTWARE_VERSIONS]
    )
